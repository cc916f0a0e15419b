"""CPUs available to the process: affinity mask capped by the cgroup quota (v2 cpu.max, v1 cfs files),
and the DataLoader worker / torch thread counts derived from it."""

from __future__ import annotations

import os

import pytest
import torch

from portrait_builder import cpus


@pytest.mark.parametrize(("text", "expected"), [("150000 100000\n", 1.5), ("max 100000\n", None),
                                                ("200000 100000", 2.0), ("garbage", None)])
def test_cpus_cgroup_v2_quota(tmp_path, text, expected):
    (tmp_path / "cpu.max").write_text(text)
    missing = (tmp_path / "no_quota", tmp_path / "no_period")
    assert cpus._cgroup_quota(tmp_path / "cpu.max", missing) == expected


def test_cpus_cgroup_v1_quota(tmp_path):
    quota, period = tmp_path / "cfs_quota_us", tmp_path / "cfs_period_us"
    quota.write_text("50000\n")
    period.write_text("100000\n")
    assert cpus._cgroup_quota(tmp_path / "absent", (quota, period)) == 0.5
    quota.write_text("-1\n")  # v1: no limit
    assert cpus._cgroup_quota(tmp_path / "absent", (quota, period)) is None


def test_cpus_available_is_affinity_capped_by_quota(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7}, raising=False)
    monkeypatch.setattr(cpus, "_cgroup_quota", lambda: 2.5)
    assert cpus.available_cpus() == 3  # a fractional quota still runs on 3 CPUs part of the time
    monkeypatch.setattr(cpus, "_cgroup_quota", lambda: None)
    assert cpus.available_cpus() == 8
    monkeypatch.setattr(cpus, "_cgroup_quota", lambda: 0.2)
    assert cpus.available_cpus() == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 5}, raising=False)
    monkeypatch.setattr(cpus, "_cgroup_quota", lambda: None)
    assert cpus.available_cpus() == 2
    assert cpus.loader_workers(4) == 2 and cpus.loader_workers(1) == 1 and cpus.loader_workers(0) == 0


def test_cpus_fit_torch_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(8)
        monkeypatch.setattr(cpus, "available_cpus", lambda: 2)
        assert cpus.fit_torch_threads() == 2 and torch.get_num_threads() == 2
        assert cpus.fit_torch_threads(processes=2) == 1
        torch.set_num_threads(1)
        assert cpus.fit_torch_threads() == 1  # never raised above what the caller chose
    finally:
        torch.set_num_threads(before)
