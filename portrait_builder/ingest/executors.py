"""Where `portrait ingest` produces videos: ``local`` (this process, one video after another) or ``ray``
(one Ray task per video on a cluster; workers write crop files and return plain rows, the driver commits).

``create_executor(name, **options).run(project, requests, progress)`` yields ``(request, report)`` per video.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from portrait_builder.detect import Detector
from portrait_builder.errors import UserError
from portrait_builder.ingest.config import IngestConfig
from portrait_builder.ingest.pipeline import (
    CommitBatch,
    PreparedVideo,
    VideoJob,
    _mark,
    commit_batch,
    finish_video,
    ingest_video,
    prepare_video,
    produce_video,
    remove_uncommitted_files,
)
from portrait_builder.ingest.report import ProducedVideo, RayRun, VideoReport
from portrait_builder.store import Project

log = logging.getLogger(__name__)

#: Fault injection for tests and drills: ``MODE:K:MARKER_DIR`` with MODE ``raise`` (the task raises) or
#: ``exit`` (the worker process dies, like a killed node). The FIRST attempt of each video fails after
#: handing K batches to its sink (crop files of those batches are on disk); the marker file
#: ``MARKER_DIR/v<id>`` records that it happened, so the retry succeeds. Read by the driver only.
FAULT_ENV = "PORTRAIT_INGEST_FAULT"


@dataclass(frozen=True)
class VideoRequest:
    """One video to ingest with its settings (``config.mot_out`` may differ per video)."""

    path: str
    config: IngestConfig


class LocalExecutor:
    """Today's behaviour: each video in this process, rows committed batch by batch by its writer thread."""

    name = "local"

    def run(self, project: Project, requests: list[VideoRequest], progress: bool = True) -> Iterator[tuple[VideoRequest, VideoReport]]:
        for r in requests:
            yield r, ingest_video(project, r.path, r.config, progress=progress)


class RayExecutor:
    """One Ray task per video (``num_gpus=1`` when the cluster has GPUs), retried on failure.

    The driver registers every video first (so each task knows its video id and resume point), workers
    run :func:`produce_video` with a collecting sink (crop files under the crop root, which must be the
    same path on every node, e.g. a shared filesystem; rows returned as plain :class:`CommitBatch`), and
    the driver commits each batch with :func:`commit_batch` (idempotent) and marks the video. No worker
    opens the store. A retried attempt rewrites the same deterministic file names; after the last attempt
    the driver deletes every file of the video that no row names, so a failed attempt leaves no orphans.
    """

    name = "ray"

    def __init__(self, address: str | None = None, max_retries: int = 3, num_cpus: float = 1.0):
        if max_retries < 0 or num_cpus <= 0:
            raise UserError("ray executor: max_retries must be >= 0 and num_cpus > 0")
        self.address, self.max_retries, self.num_cpus = address, int(max_retries), float(num_cpus)

    def run(self, project: Project, requests: list[VideoRequest], progress: bool = True) -> Iterator[tuple[VideoRequest, VideoReport]]:
        try:
            import ray
        except ImportError:  # pragma: no cover - ray is a declared dependency
            raise UserError("the ray executor needs the ray package: pip install ray") from None
        from portrait_builder.video import probe

        for r in requests:  # every input checked before anything is registered
            probe(r.path)
        started_here = not ray.is_initialized()
        if started_here:
            check_reachable(self.address)
            try:
                ray.init(address=self.address, include_dashboard=False, logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UserError(f"cannot connect to the Ray cluster at {self.address or '(local)'}: {str(exc).splitlines()[0]}") from None
        try:
            yield from self._run(ray, project, requests, progress)
        finally:
            if started_here:
                ray.shutdown()

    def _run(self, ray, project: Project, requests: list[VideoRequest], progress: bool) -> Iterator[tuple[VideoRequest, VideoReport]]:
        fault = os.environ.get(FAULT_ENV) or None
        detectors: dict[str, Detector] = {}
        prepared: list[tuple[VideoRequest, PreparedVideo | VideoReport]] = []
        seen: dict[int, str] = {}
        for r in requests:
            p = prepare_video(project, r.path, r.config, partial(_driver_detector, detectors, r.config))
            if isinstance(p, PreparedVideo) and p.job.video_id in seen:  # the same content named twice
                p = VideoReport(video_id=p.job.video_id, path=r.path, fingerprint=p.fingerprint, status="done",
                                skipped=True, duplicate_of=seen[p.job.video_id])
            elif isinstance(p, PreparedVideo):
                seen[p.job.video_id] = r.path
            prepared.append((r, p))
        for r, p in prepared:
            if isinstance(p, VideoReport):
                yield r, p
        work = [(r, p) for r, p in prepared if isinstance(p, PreparedVideo)]
        if not work:
            return
        gpus = gpus_per_task(ray.cluster_resources())
        task = ray.remote(_produce_task).options(
            num_cpus=self.num_cpus, num_gpus=gpus, max_retries=self.max_retries, retry_exceptions=True, name="portrait-ingest"
        )
        log.info("dispatching %d videos to Ray (%s GPU per task)", len(work), gpus)
        refs = {task.remote(p.job, fault): (r, p) for r, p in work}
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(refs), desc="ray ingest", unit="video", dynamic_ncols=True)
        crops = 0
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                r, p = refs[ready[0]]
                report = self._collect(ray, project, ready[0], p)
                crops += report.crops
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(crops=crops, refresh=False)
                yield r, report
        except BaseException:
            for ref in pending:  # videos stay "running": a re-run resumes after their last committed frame
                ray.cancel(ref, force=True)
            raise
        finally:
            if bar is not None:
                bar.close()

    def _collect(self, ray, project: Project, ref, p: PreparedVideo) -> VideoReport:
        video_id = p.job.video_id
        try:
            out: _Produced | _Refused = ray.get(ref)
        except ray.exceptions.RayError as exc:
            cause = getattr(exc, "cause", None) or exc
            return _failed(project, p, f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1] if str(cause).strip() else ''}"
                           f" (after {self.max_retries} retries)")
        if isinstance(out, _Refused):
            return _failed(project, p, out.user_error)
        produced = out.produced
        det = produced.detector
        if det.fingerprint != p.detector.fingerprint:
            return _failed(project, p, f"the worker's {det.name} detector ({det.fingerprint[:12]}) differs from the "
                                       f"driver's ({p.detector.fingerprint[:12]}): install the same versions and weights on every node")
        t0 = time.perf_counter()
        inserted = 0
        for batch in out.batches:
            inserted += commit_batch(project, video_id, batch)
        commit_s = produced.seconds.get("commit", 0.0) + time.perf_counter() - t0
        produced = replace(produced, seconds={**produced.seconds, "commit": commit_s})
        removed = remove_uncommitted_files(project, video_id)  # anything a failed attempt wrote and no row names
        if removed:
            log.info("video %d: removed %d files of a failed attempt", video_id, removed)
        return replace(finish_video(project, p, produced), ray=RayRun(node=out.node, rows_inserted=inserted))


def check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail in seconds, with one line, when a named Ray head does not answer.

    ``ray.init`` keeps retrying an unreachable GCS or client server for minutes before it gives up;
    a plain TCP connect to HOST:PORT says the same thing at once. ``None``/``auto``/``local`` are left to Ray.
    """
    if not address or address in ("auto", "local"):
        return
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UserError(f"bad Ray address {address!r}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise UserError(f"cannot connect to the Ray cluster at {address}: {exc.strerror or exc}") from None


def gpus_per_task(cluster_resources: dict) -> int:
    """One GPU per video task when the cluster has at least one GPU, else none (CPU twin). Ray then sets
    ``CUDA_VISIBLE_DEVICES`` for the task, so ``device="auto"`` picks that GPU."""
    return 1 if float(cluster_resources.get("GPU", 0) or 0) >= 1 else 0


def _failed(project: Project, p: PreparedVideo, error: str) -> VideoReport:
    """The task failed for good: nothing of it was committed, so every file it wrote is an orphan."""
    video_id = p.job.video_id
    removed = remove_uncommitted_files(project, video_id)
    _mark(project, video_id, "failed", error, None)
    log.warning("video %d (%s) failed: %s; removed %d uncommitted files", video_id, p.job.path, error, removed)
    return VideoReport(video_id=video_id, path=p.job.path, fingerprint=p.fingerprint, status="failed", error=error,
                       ray=RayRun(node=None, rows_inserted=0))


def _driver_detector(cache: dict[str, Detector], config: IngestConfig) -> Detector:
    """The detector's identity (name, fingerprint, params) for registering videos: built on the driver's
    CPU once per distinct setting; the workers build their own."""
    from portrait_builder.detect import create_detector

    key = json.dumps([config.detector, config.weights, config.detector_options], sort_keys=True, default=str)
    if key not in cache:
        cache[key] = create_detector(config.detector, weights=config.weights, device="cpu", **config.detector_options)
    return cache[key]


@dataclass(frozen=True)
class _Produced:
    """A Ray task's result, pickled back to the driver: the counters, the rows to commit, the worker's node."""

    produced: ProducedVideo
    batches: tuple[CommitBatch, ...]
    node: str | None


@dataclass(frozen=True)
class _Refused:
    """A Ray task that refused its video for a settings error (retrying cannot help): the one-line reason."""

    user_error: str


def _produce_task(job: VideoJob, fault: str | None = None) -> _Produced | _Refused:
    """The Ray task: produce one video with a collecting sink and return its rows (never opens the store)."""
    batches: list[CommitBatch] = []

    def sink(batch: CommitBatch) -> None:
        batches.append(batch)
        if fault:
            _maybe_fail(fault, job.video_id, len(batches))

    try:
        produced = produce_video(job, sink, progress=False)
    except UserError as exc:  # bad settings or weights: retrying cannot help
        return _Refused(str(exc))
    node = None
    try:
        import ray

        node = ray.get_runtime_context().get_node_id()
    except (ImportError, RuntimeError):  # called outside Ray (tests of the task body): no node to name
        pass
    return _Produced(produced, tuple(batches), node)


def _maybe_fail(fault: str, video_id: int, n_batches: int) -> None:
    mode, after, marker_dir = fault.split(":", 2)
    if n_batches < int(after):
        return
    marker = Path(marker_dir) / f"v{video_id:05d}"
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        with open(marker, "x") as f:  # only the first attempt of this video gets here
            f.write(str(os.getpid()))
    except FileExistsError:
        return
    if mode == "exit":
        os._exit(17)  # the worker dies mid-task, files of the batches so far on disk
    raise RuntimeError(f"injected fault ({FAULT_ENV}) in video {video_id} after {n_batches} batches")


EXECUTORS = {"local": LocalExecutor, "ray": RayExecutor}


def executor_names() -> list[str]:
    return sorted(EXECUTORS)


def create_executor(name: str, **options):
    """``create_executor("local")`` or ``create_executor("ray", address=..., max_retries=3)``."""
    cls = EXECUTORS.get(name)
    if cls is None:
        raise UserError(f"unknown executor {name!r}; valid: {', '.join(executor_names())}")
    try:
        return cls(**options)
    except TypeError as exc:
        raise UserError(f"executor {name}: {exc}") from None
