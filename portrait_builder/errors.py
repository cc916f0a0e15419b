"""The one exception type for user mistakes: the CLI prints its message on one line and exits non-zero."""


class UserError(Exception):
    """Bad input from the user (a missing file, a bad value, an unreachable database).

    The message is shown as it is, so it should say what is wrong and, where it helps, what to do.
    """

    exit_code = 2
