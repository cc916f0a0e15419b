"""Ingest speed: decode-only, detector-only and end-to-end fps in one process, and the overlap ratio
end-to-end / min(decode, detect) (target >= 0.85). Runs on a synthetic clip, and on the PETS09 clip when
../shared/data is present. Absolute numbers are noisy on shared machines; the ratio is the figure.

    python benchmarks/ingest.py [--frames N] [--no-pets]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from portrait_builder.detect import create_detector
from portrait_builder.ingest import IngestConfig, ingest_video
from portrait_builder.store import Project
from portrait_builder.synth import SynthConfig, render_video
from portrait_builder.video import VideoReader

PETS = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "vtest_pets09_s2l1_480x360.avi"


def measure(path: Path, options: dict, frames: int | None, tmp: Path) -> dict:
    t = time.perf_counter()
    images = []
    with VideoReader(path) as r:
        for f in r:
            if frames and f.index >= frames:
                break
            images.append(f.image.copy())
    decode_fps = len(images) / (time.perf_counter() - t)
    det = create_detector("hog", **options)
    t = time.perf_counter()
    for img in images:
        det.detect([img])
    detect_fps = len(images) / (time.perf_counter() - t)
    n = len(images)
    del images
    clip = path
    if frames:  # end-to-end on the same frames: cut the clip losslessly enough with ffmpeg stream copy
        clip = tmp / f"head{path.suffix}"
        import subprocess

        from portrait_builder.video import ffmpeg_exe

        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(path), "-frames:v", str(frames), "-c:v", "mjpeg", "-q:v", "2", str(clip.with_suffix(".avi"))], check=True)
        clip = clip.with_suffix(".avi")
    project = Project.init(tmp / f"p{time.time_ns()}")
    report = ingest_video(project, clip, IngestConfig(detector_options=options, crop_every=5, min_height=30), progress=False, detector=det)
    e2e = report["frames_processed"] / report["seconds"]["wall"]
    return {"frames": n, "decode_fps": decode_fps, "detect_fps": detect_fps, "end_to_end_fps": e2e,
            "ratio": e2e / min(decode_fps, detect_fps)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=200, help="PETS09 frames to use (0: all 795)")
    ap.add_argument("--no-pets", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        clip = tmp / "synth.mp4"
        render_video(clip, SynthConfig(num_frames=200, seed=0))
        rows = [("synthetic 480x320, 200 frames", measure(clip, {}, None, tmp))]
        if PETS.is_file() and not a.no_pets:
            rows.append((f"PETS09 480x360 upscale 2, {a.frames or 795} frames", measure(PETS, {"upscale": 2.0}, a.frames or None, tmp)))
    print(f"{'clip':<44} {'decode fps':>10} {'detect fps':>10} {'e2e fps':>8} {'e2e/min':>8}")
    for name, r in rows:
        print(f"{name:<44} {r['decode_fps']:>10.1f} {r['detect_fps']:>10.1f} {r['end_to_end_fps']:>8.1f} {r['ratio']:>8.2f}")


if __name__ == "__main__":
    main()
