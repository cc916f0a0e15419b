"""JDE inference speed: network fps per batch size in fp32 (and fp16 on CUDA), the detector path
(letterbox + network + decode + NMS) and, when the ingest stage exists, end-to-end ingest fps.

Prints each figure with its ratio to the published 22.2 FPS (1088x608, whole system, Titan Xp). Without
--weights the network has random weights whose confidence bias is set so that scores are background-like
(~0.01), so NMS sees a realistic handful of boxes, not half the anchors. Timings on a shared CPU are noisy.

    python benchmarks/jde.py --size 1088x608 --batches 1,8,32 [--weights W] [--device cuda] [--video V|synth]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from portrait_builder.detect.jde.backend import JDEDetector  # noqa: E402
from portrait_builder.detect.jde.model import build_jde_net  # noqa: E402

PUBLISHED_FPS = 22.2  # JDE 1088x608, MOT16 train, Titan Xp


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def background_weights(size: str, path: Path) -> None:
    model = build_jde_net(size)
    for i in (k - 4 for k in model.yolo_indices):  # the 24-channel box/conf convolution of each head
        conv = model.module_list[i][0]
        with torch.no_grad():
            conv.weight.mul_(0.01)
            bias = conv.bias.view(4, 6)
            bias[:, 4] = 0.0
            bias[:, 5] = -4.6  # softmax -> score ~0.01
    torch.save({"epoch": 0, "model": model.state_dict(), "optimizer": None}, path)


def time_it(fn, repeats: int, device) -> float:
    fn()  # warm-up (cudnn autotune, allocator)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / repeats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1088x608")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--video", default=None, help="video for the end-to-end ingest figure, or 'synth' to render one")
    ap.add_argument("--ingest-frames", type=int, default=20, help="frames of the rendered 1920x1080 video (--video synth)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    tmp = tempfile.TemporaryDirectory()
    weights = args.weights
    if not weights:
        weights = os.path.join(tmp.name, "background.pt")
        background_weights(args.size, Path(weights))
    det32 = JDEDetector(weights=weights, device=args.device, size=args.size, fp16=False)
    device = det32.device
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, GPU {gpu}")
    print(f"size {args.size}; published JDE: {PUBLISHED_FPS} FPS at 1088x608 (whole system, Titan Xp)")
    precisions = [("fp32", False)] + ([("fp16", True)] if device.type == "cuda" else [])
    rng = np.random.default_rng(0)
    w, h = det32.width, det32.height
    print(f"{'what':<28} {'batch':>5} {'fps':>9} {'x published':>12}")
    for prec, fp16 in precisions:
        det = det32 if not fp16 else JDEDetector(weights=weights, device=args.device, size=args.size, fp16=True)
        for b in (int(s) for s in args.batches.split(",")):
            x = torch.rand(b, 3, h, w, device=device)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)

            def net(x=x, det=det, fp16=fp16):
                with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16, enabled=fp16):
                    det.model.forward_heads(x)

            frames = [rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8) for _ in range(b)]
            reps = max(1, math.ceil(args.repeats / max(1, b // 8)))
            t_net = time_it(net, reps, device)
            t_det = time_it(lambda det=det, frames=frames: det.detect(frames), reps, device)
            for what, t in ((f"network {prec}", t_net), (f"detect() 1080p frames {prec}", t_det)):
                fps = b / t
                print(f"{what:<28} {b:>5} {fps:>9.2f} {fps / PUBLISHED_FPS:>11.2f}x", flush=True)
    if args.video:
        _ingest_fps(args, weights)
    return 0


def _ingest_fps(args, weights) -> None:
    """Whole ingest (decode, letterbox, network, NMS, tracking, crops, store) with ``--detector jde``."""
    from portrait_builder.ingest import IngestConfig, ingest_video
    from portrait_builder.store import Project
    from portrait_builder.video import probe

    with tempfile.TemporaryDirectory() as d:
        video = args.video
        if video == "synth":
            from portrait_builder.synth import SynthConfig, render_video

            video = str(Path(d) / "synth.mp4")
            render_video(video, SynthConfig(width=1920, height=1080, num_frames=args.ingest_frames, shot_starts=(),
                                            min_person_height=300, max_person_height=600, seed=1))
        project = Project.init(Path(d) / "proj")
        n = probe(video).frame_count or 0
        cfg = IngestConfig(detector="jde", weights=weights, device=args.device, detector_options={"size": args.size})
        t0 = time.perf_counter()
        report = ingest_video(project, video, cfg, progress=False)
        dt = time.perf_counter() - t0
        fps = n / dt if dt else float("nan")
        print(f"end-to-end ingest --detector jde ({n} frames, {Path(video).name}, status {report.status}): "
              f"{fps:.2f} fps, {fps / PUBLISHED_FPS:.3f}x published", flush=True)
        project.close()


if __name__ == "__main__":
    sys.exit(main())
