"""Tables of per-movie rows for the commands that list things movie by movie (``characters``,
``identities list``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar


class MovieRow(Protocol):
    @property
    def video_id(self) -> int: ...

    @property
    def video(self) -> str: ...


R = TypeVar("R", bound=MovieRow)


def print_by_movie(rows: Sequence[R], noun: str, columns: str, line: Callable[[R], str]) -> None:
    """``rows`` (in movie order) as one table per movie: a heading with the movie's id, title and number
    of ``noun``, the ``columns`` heading, then ``line(row)`` per row; a blank line between movies."""
    video = None
    for r in rows:
        if r.video_id != video:
            video = r.video_id
            n = sum(1 for x in rows if x.video_id == video)
            print(f"{'' if r is rows[0] else chr(10)}movie {r.video_id} {r.video!r}: {n} {noun}")
            print(columns)
        print(line(r))
