"""A tiny synthetic release that follows the release contract (annotations.parquet + taxonomy.yaml +
256x128 JPEGs), drawn so that a small network can learn something in two CPU epochs: each identity
has its own shirt/trouser colours; gender, age, physique and height (identity properties) change the
hair, head, width and figure height; body/arm posture and expression change per crop."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from portrait_builder.resources import schemas_dir

H, W = 256, 128
GENDERS = ["male", "female"]
AGES = ["child", "young_adult", "elderly"]
PHYSIQUES = ["thin", "medium", "heavy"]
HEIGHTS = ["short", "average", "tall"]
BODIES = ["standing", "sitting", "lying"]
ARMS = ["arms_down", "arm_raised", "arms_crossed"]
EXPRESSIONS = ["neutral", "happiness", "sadness"]
MOUTH = {"neutral": (90, 90, 90), "happiness": (20, 220, 40), "sadness": (30, 60, 230)}


def _person(rng, ident: dict, body: str, arm: str, expr: list[str]) -> np.ndarray:
    img = rng.integers(90, 160, size=(H, W, 3)).astype(np.uint8)  # noisy background
    img[:] = (img * 0.6 + np.array(ident["bg"]) * 0.4).astype(np.uint8)
    cx = W // 2 + int(rng.integers(-8, 9))
    half = {"thin": 14, "medium": 22, "heavy": 32}[ident["physique"]]
    scale = {"short": 0.7, "average": 0.85, "tall": 1.0}[ident["height"]]
    top = int(H - 8 - 240 * scale) + int(rng.integers(-4, 5))
    head = {"child": 24, "young_adult": 18, "elderly": 18}[ident["age"]]
    if body == "lying":  # a horizontal figure across the lower half
        y0 = 150 + int(rng.integers(-6, 7))
        img[y0:y0 + 2 * half // 2 + 10, 12:W - 30] = ident["shirt"]
        img[y0 + 4:y0 + half // 2 + 12, W - 30:W - 8] = (224, 189, 160)
        return img
    legs_top = top + head * 2 + int(100 * scale)
    hair = (200, 200, 200) if ident["age"] == "elderly" else (60, 35, 20)
    img[top:top + head * 2, cx - head:cx + head] = (224, 189, 160)  # face
    hair_len = head * 3 if ident["gender"] == "female" else head // 2
    img[top - 6:top + hair_len, cx - head - 4:cx - head + 4] = hair
    img[top - 6:top + hair_len, cx + head - 4:cx + head + 4] = hair
    img[top - 6:top + 2, cx - head:cx + head] = hair
    mouth_y = top + int(head * 1.4)
    for i, e in enumerate(expr):
        img[mouth_y + 3 * i:mouth_y + 3 * i + 3, cx - head // 2:cx + head // 2] = MOUTH[e]
    img[top + head * 2:legs_top, cx - half:cx + half] = ident["shirt"]
    if body == "sitting":  # legs folded forward: short and wide
        img[legs_top:min(H, legs_top + 30), cx - half:min(W, cx + half + 40)] = ident["trousers"]
    else:
        img[legs_top:H - 8, cx - half:cx + half] = ident["trousers"]
    arm_col = tuple(int(c * 0.7) for c in ident["shirt"])
    if arm == "arm_raised":
        img[max(0, top - 30):top + head * 2 + 20, cx + half:cx + half + 8] = arm_col
    elif arm == "arms_crossed":
        img[top + head * 2 + 30:top + head * 2 + 42, cx - half - 6:cx + half + 6] = arm_col
    else:
        img[top + head * 2:top + head * 2 + 90, cx - half - 8:cx - half] = arm_col
        img[top + head * 2:top + head * 2 + 90, cx + half:cx + half + 8] = arm_col
    return img


def make_synthetic_release(root: Path, n_train_ids: int = 16, n_test_ids: int = 8, per_train: int = 12,
                           n_query: int = 2, per_gallery: int = 6, n_unidentified: int = 48, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    shutil.copy(schemas_dir() / "taxonomy.yaml", root / "taxonomy.yaml")
    n_ids = n_train_ids + n_test_ids
    hues = rng.permutation(n_ids * 2)
    palette = [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(n_ids * 2)]
    idents = []
    for k in range(n_ids):
        idents.append({
            "pid": 100 + k, "shirt": palette[hues[2 * k]], "trousers": palette[hues[2 * k + 1]],
            "bg": tuple(int(v) for v in rng.integers(60, 200, 3)),
            "gender": GENDERS[k % 2], "age": AGES[(k // 2) % 3], "physique": PHYSIQUES[k % 3],
            "height": HEIGHTS[(k // 3) % 3],
        })
    rows = []
    next_group = [0]

    def add(ident: dict, subset: str, identified: bool, group: int | None = None) -> None:
        crop_id = len(rows) + 1
        body, arm = BODIES[rng.integers(3)], ARMS[rng.integers(3)]
        expr = sorted({EXPRESSIONS[rng.integers(3)] for _ in range(int(rng.integers(1, 3)))})
        img = _person(rng, ident, body, arm, expr)
        rel = f"images/{crop_id:05d}.jpg"
        Image.fromarray(img).save(root / rel, quality=90)
        unsure = rng.random() < 0.05  # a few "unsure" labels and nulls: both mean "no label"
        rows.append({
            "crop_id": crop_id, "file": rel, "subset": subset,
            "identity": ident["pid"] if identified else None,
            "video": "synthetic.mp4", "video_id": 1, "track": ident["pid"], "frame": crop_id * 5,
            "x1": 0.0, "y1": 0.0, "x2": float(W), "y2": float(H), "phash": None, "group": group,
            "gender": ident["gender"], "age": "unsure" if unsure else ident["age"],
            "physique": None if rng.random() < 0.05 else ident["physique"], "height": ident["height"],
            "body_posture": body, "arm_posture": arm, "expression": None if unsure else expr,
        })

    for ident in idents[:n_train_ids]:
        for _ in range(per_train):
            add(ident, "train", True)
    for _ in range(n_unidentified):
        add(idents[int(rng.integers(n_train_ids))], "train", False)
    for ident in idents[n_train_ids:]:
        # The first query and the first gallery crop share a pHash group: that gallery crop is ignored.
        g = next_group[0]
        next_group[0] += 1
        for q in range(n_query):
            add(ident, "query", True, g if q == 0 else None)
        for j in range(per_gallery):
            add(ident, "gallery", True, g if j == 0 else None)
    for _ in range(n_unidentified // 3):
        add(idents[n_train_ids + int(rng.integers(n_test_ids))], "gallery", False)
    table = pd.DataFrame(rows)
    for col in ("identity", "group"):
        table[col] = table[col].astype("Int64")
    for col in ("x1", "y1", "x2", "y2"):
        table[col] = table[col].astype("float32")
    table.to_parquet(root / "annotations.parquet", index=False)
    return root


@pytest.fixture(scope="session")
def synthetic_release(tmp_path_factory) -> Path:
    return make_synthetic_release(tmp_path_factory.mktemp("release") / "v0.1.0")
