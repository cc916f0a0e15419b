"""Fixtures for the dedup tests: image files to hash (real crops when ../shared/data is present)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def synthetic_images(tmp_path: Path) -> list[Path]:
    """Images that stress the hash: flat (all DCT ties), gradients, noise, odd sizes, every mode PIL
    knows how to convert, PNG and JPEG, grey and colour, upscales (smaller than 32 px) and big frames."""
    from PIL import Image

    rng = np.random.default_rng(7)
    out = []

    def save(img: Image.Image, name: str, **kw):
        path = tmp_path / name
        img.save(path, **kw)
        out.append(path)

    save(Image.new("RGB", (128, 256), (120, 30, 200)), "flat.jpg", quality=90)
    save(Image.new("L", (64, 64), 0), "black.png")
    yy, xx = np.mgrid[0:256, 0:128]
    save(Image.fromarray(((xx * 2 + yy) % 256).astype(np.uint8)), "gradient_l.jpg", quality=95)
    for i, (w, h) in enumerate([(128, 256), (50, 131), (24, 65), (300, 33), (20, 20), (1920, 1080), (31, 97), (257, 129)]):
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if i % 2:  # smooth some of them: natural-image-like spectra
            from PIL import ImageFilter

            img = Image.fromarray(arr).filter(ImageFilter.GaussianBlur(3))
        else:
            img = Image.fromarray(arr)
        save(img, f"noise_{w}x{h}.jpg", quality=int(rng.integers(60, 98)))
    save(Image.fromarray(rng.integers(0, 256, (100, 60, 3), dtype=np.uint8)), "rgb.png")
    save(Image.fromarray(rng.integers(0, 256, (100, 60, 4), dtype=np.uint8), "RGBA"), "rgba.png")
    save(Image.fromarray(rng.integers(0, 256, (90, 70), dtype=np.uint8)).convert("P"), "palette.png")
    save(Image.fromarray(rng.integers(0, 256, (80, 40, 3), dtype=np.uint8)).convert("CMYK"), "cmyk.jpg")
    save(Image.fromarray(rng.integers(0, 256, (80, 40, 3), dtype=np.uint8)), "progressive.jpg", progressive=True)
    save(Image.fromarray(rng.integers(0, 256, (80, 40, 3), dtype=np.uint8)), "q444.jpg", subsampling=0, quality=97)
    return out


def real_images() -> list[Path]:
    if not SHARED.is_dir():
        return []
    paths = sorted((SHARED / "person_crops").glob("*/*.jpg")) + sorted((SHARED / "market1501_fullframes").glob("*/*.jpg"))
    paths += sorted((SHARED / "mot").glob("*/*/*/img1/*.jpg"))[:12]
    return paths


@pytest.fixture
def synthetic_files(tmp_path) -> list[Path]:
    return synthetic_images(tmp_path)


@pytest.fixture
def real_files(shared_data) -> list[Path]:
    paths = real_images()
    if not paths:
        pytest.skip("no JPEGs under ../shared/data")
    return paths
