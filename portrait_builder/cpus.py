"""How many CPUs this process may actually use: the affinity mask and the cgroup CPU quota.

``os.cpu_count()`` reports the host's CPUs, not the 2 a container or ``taskset`` grants; sizing
DataLoader workers or thread pools from it oversubscribes the machine (PyTorch then warns that the
suggested maximum number of workers is exceeded).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

_CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
_CGROUP_V1 = (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))


def _cgroup_quota(v2: Path = _CGROUP_V2, v1: tuple[Path, Path] = _CGROUP_V1) -> float | None:
    """CPUs granted by the cgroup quota (quota / period), or None when unlimited or unknown."""
    try:
        quota, period = v2.read_text().split()[:2]
        if quota != "max" and float(period) > 0:
            return float(quota) / float(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us, period_us = (float(p.read_text()) for p in v1)
        if quota_us > 0 and period_us > 0:
            return quota_us / period_us
    except (OSError, ValueError):
        pass
    return None


def available_cpus() -> int:
    """CPUs this process can run on: the affinity mask, capped by a cgroup quota (rounded up), >= 1."""
    if hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:  # pragma: no cover - macOS and Windows have no affinity call
        count = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(1, count)


def loader_workers(requested: int) -> int:
    """DataLoader worker processes: the configured number, at most the CPUs available."""
    return max(0, min(int(requested), available_cpus()))


def fit_torch_threads(processes: int = 1) -> int:
    """Cap torch's intra-op threads at this process's share of the CPUs available (torch sizes its
    pool from the host's cores, which oversubscribes a container or a ``taskset``); ``processes``:
    how many processes share them (DDP ranks on one machine). Returns the thread count in use."""
    import torch

    cpus = max(1, available_cpus() // max(1, processes))
    if torch.get_num_threads() > cpus:
        torch.set_num_threads(cpus)
    return torch.get_num_threads()
