"""Resident memory of this process for the benchmarks: now, and sampled over a block of work (Linux)."""

from __future__ import annotations

import os
import threading


def resident_mib() -> float:
    """This process's resident set size now, in MiB (``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssSampler:
    """Resident memory sampled every ``every`` seconds by a thread while the ``with`` block runs.

    ``before``: MiB on entry; ``peak``: the most seen from entry to exit; ``samples``: the thread's
    readings (what :meth:`quarters` splits). Sampling, not tracing: a spike shorter than ``every`` can
    pass unseen.
    """

    def __init__(self, every: float = 0.25):
        self.every = every
        self.samples: list[float] = []
        self.before = self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(resident_mib())

    def __enter__(self) -> RssSampler:
        self.before = resident_mib()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max([self.before, *self.samples, resident_mib()])

    def quarters(self) -> list[float]:
        """Peak MiB in each quarter of the run: flat when the last quarters do not exceed the first."""
        n = len(self.samples)
        return [round(max(self.samples[i * n // 4:max((i + 1) * n // 4, i * n // 4 + 1)]), 1) for i in range(4)] if n else []
