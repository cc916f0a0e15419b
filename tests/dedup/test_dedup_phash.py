"""pHash: bit-identical to imagehash (the reference) on real and synthetic images; conversions."""

from __future__ import annotations

import imagehash
import numpy as np
import pytest
from PIL import Image

from portrait_builder.dedup import hash_to_hex, hex_to_hash, phash_files, to_signed, to_unsigned
from portrait_builder.dedup.phash import hashes_from_small, pass_order, phash_files_checked, resize_lanczos_exact


def reference(paths) -> list[str]:
    return [str(imagehash.phash(Image.open(p))) for p in paths]


def test_identical_to_imagehash_on_real_crops_and_frames(real_files):
    ours = [hash_to_hex(h) for h in phash_files(real_files, workers=2, chunk=7)]
    assert ours == reference(real_files)


def test_identical_to_imagehash_on_synthetic_images(synthetic_files):
    ours = [hash_to_hex(h) for h in phash_files(synthetic_files, workers=1)]
    assert ours == reference(synthetic_files)


def test_identical_when_crops_are_resized_to_store_size(tmp_path, real_files):
    """Ingest writes 256x128 crops; cut them from the real frames at random and compare."""
    rng = np.random.default_rng(3)
    frames = [p for p in real_files if Image.open(p).size[0] >= 640]
    paths = []
    for i in range(40):
        with Image.open(frames[i % len(frames)]) as im:
            w, h = im.size
            cw = int(rng.integers(40, 200))
            ch = int(cw * rng.uniform(1.8, 2.6))
            x, y = int(rng.integers(0, w - cw)), int(rng.integers(0, h - ch))
            crop = im.convert("RGB").crop((x, y, x + cw, y + ch)).resize((128, 256), Image.Resampling.BILINEAR)
        path = tmp_path / f"crop{i:02d}.jpg"
        crop.save(path, quality=int(rng.integers(75, 96)))
        paths.append(path)
    assert [hash_to_hex(h) for h in phash_files(paths, chunk=16)] == reference(paths)


def test_batched_stack_equals_one_at_a_time():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (50, 32, 32)).astype(np.float64)
    small[3] = 17  # flat: every AC coefficient ties with the median
    batched = hashes_from_small(small)
    single = np.concatenate([hashes_from_small(small[i : i + 1]) for i in range(len(small))])
    assert np.array_equal(batched, single)
    for i in (0, 3, 49):
        ref = imagehash.phash(Image.fromarray(small[i].astype(np.uint8)))  # already 32x32: resize is a copy
        assert hash_to_hex(batched[i]) == str(ref)


@pytest.mark.parametrize("shape", [(256, 128), (128, 256), (100, 100), (20, 20), (1080, 1920), (65, 24)])
def test_resize_matches_pillow_exactly(shape):
    rng = np.random.default_rng(shape[0] * 7 + shape[1])
    imgs = rng.integers(0, 256, (3, *shape), dtype=np.uint8)
    order = pass_order(*shape)
    assert order in ("hv", "vh")
    ours = resize_lanczos_exact(imgs, 32, order)
    ref = np.stack([np.asarray(Image.fromarray(i).resize((32, 32), Image.Resampling.LANCZOS)) for i in imgs])
    assert np.array_equal(ours, ref)


def test_signed_unsigned_round_trip_covers_the_full_range():
    values = np.array([0, 1, 2**63 - 1, 2**63, 2**64 - 1, 0x8181C2D2D2FC7E3E], dtype=np.uint64)
    signed = to_signed(values)
    assert signed.dtype == np.int64
    assert signed[3] == -(2**63) and signed[4] == -1 and signed[2] == 2**63 - 1
    assert np.array_equal(to_unsigned(signed), values)
    assert hash_to_hex(signed[4]) == "ffffffffffffffff"
    assert hex_to_hash("8181c2d2d2fc7e3e") == 0x8181C2D2D2FC7E3E


def test_unreadable_files_raise_or_are_reported(tmp_path, synthetic_files):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    missing = tmp_path / "missing.jpg"
    paths = [synthetic_files[0], bad, missing, synthetic_files[1]]
    with pytest.raises(OSError, match="broken.jpg"):
        phash_files(paths)
    hashes, ok = phash_files_checked(paths)
    assert ok.tolist() == [True, False, False, True]
    assert [hash_to_hex(h) for h in hashes[[0, 3]]] == reference([synthetic_files[0], synthetic_files[1]])
    assert phash_files([]).shape == (0,)


def test_opencv_decoder_path_is_identical_too(monkeypatch, synthetic_files, tmp_path):
    """Without simplejpeg the fast path decodes with cv2.imdecode; it must give the same hashes."""
    from portrait_builder.dedup import phash as ph

    monkeypatch.setattr(ph, "_simplejpeg", None)
    assert [hash_to_hex(h) for h in phash_files(synthetic_files, workers=1)] == reference(synthetic_files)


def test_grey_conversion_is_pillows_for_every_colour():
    """All 2**24 RGB colours through our float32 grey conversion vs Pillow's own convert('L')."""
    from portrait_builder.dedup.phash import bgr_to_l_exact

    for part in range(4):
        v = np.arange(part << 22, (part + 1) << 22, dtype=np.uint32)
        rgb = np.stack([(v >> 16) & 255, (v >> 8) & 255, v & 255], -1).astype(np.uint8).reshape(2048, 2048, 3)
        ref = np.asarray(Image.fromarray(rgb, "RGB").convert("L"))
        ours = bgr_to_l_exact(np.ascontiguousarray(rgb[..., ::-1]))
        assert np.array_equal(ours, ref), part


def test_worker_processes_give_the_same_hashes_and_failures(monkeypatch, tmp_path, synthetic_files):
    """Big inputs go to a process pool: same hashes as imagehash, bad files still reported in place."""
    from portrait_builder.dedup import phash as ph

    monkeypatch.setattr(ph, "MIN_FILES_FOR_POOL", 4)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    paths = [*synthetic_files, bad, *synthetic_files[:3]]
    hashes, ok = phash_files_checked(paths, workers=2, chunk=3)
    assert 2 in ph._POOLS  # the pool really ran
    assert ok.tolist() == [True] * len(synthetic_files) + [False, True, True, True]
    good = [p for p, k in zip(paths, ok, strict=True) if k]
    assert [hash_to_hex(h) for h in hashes[ok]] == reference(good)


def test_a_broken_worker_pool_falls_back_to_this_process(monkeypatch, synthetic_files):
    from concurrent.futures.process import BrokenProcessPool

    from portrait_builder.dedup import phash as ph

    class Broken:
        def map(self, *args, **kwargs):
            raise BrokenProcessPool("a worker was killed")

    monkeypatch.setattr(ph, "MIN_FILES_FOR_POOL", 1)
    monkeypatch.setitem(ph._POOLS, 2, Broken())
    assert [hash_to_hex(h) for h in phash_files(synthetic_files[:4], workers=2)] == reference(synthetic_files[:4])
    assert not isinstance(ph._POOLS.get(2), Broken)


@pytest.mark.parametrize("delay", [0.3, 2.5])  # while the worker pool starts / while it hashes
def test_ctrl_c_reaches_only_the_caller(tmp_path, synthetic_files, delay):
    """Ctrl-C signals the whole process group: the caller gets KeyboardInterrupt (the CLI turns it into
    one line), while the forkserver and the workers print nothing, even mid start-up."""
    import os
    import signal
    import subprocess
    import sys
    import time

    jpegs = [str(p) for p in synthetic_files if str(p).endswith(".jpg")]
    script = (
        "import sys\n"
        "from portrait_builder.dedup import phash\n"
        "paths = sys.argv[1:] * 4000\n"
        "print('start', flush=True)\n"
        "phash.phash_files(paths, workers=2)\n"
        "print('finished', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, *jpegs], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    assert proc.stdout.readline().strip() == "start"
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert "finished" not in out, "the job ended before the signal: make it longer"
    assert proc.returncode != 0
    assert err.count("Traceback") == 1 and err.rstrip().endswith("KeyboardInterrupt"), err[-3000:]
