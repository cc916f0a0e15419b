"""JDE training: anchor assignment and loss on hand cases, AP against scikit-learn, and a tiny JDE trained for
about a minute on synthetic frames that then detects the synthetic people (AP@0.5 above a floor)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from portrait_builder.detect.jde.metrics import average_precision, match_detections
from portrait_builder.detect.jde.train import (
    build_targets,
    jde_loss,
    label_path_for,
    read_image_list,
)

SRC_W, SRC_H = 320, 200
TINY = "tiny-256x160"


# ----------------------------------------------------------------------------- synthetic frames
def synth_frames(seed: int, num_frames: int = 40, id_offset: int = 0, min_visibility: float = 0.0):
    """Frames and boxes from the project's synthetic-video renderer (portrait_builder.synth), four shots with
    their own background and palette; identities are the synth person ids minus 1 plus ``id_offset`` (0-based, as JDE wants)."""
    from portrait_builder.synth import render_frames

    cfg = synth_config(seed, num_frames)
    frames, gts = [], []
    for _, frame, boxes in render_frames(cfg):
        frames.append(frame)
        gts.append([(pid - 1 + id_offset, *xyxy.tolist()) for pid, xyxy, vis in boxes if vis >= min_visibility])
    return frames, gts


def synth_config(seed: int, num_frames: int = 40):
    from portrait_builder.synth import SynthConfig

    q = num_frames // 4
    return SynthConfig(width=SRC_W, height=SRC_H, fps=10.0, num_frames=num_frames, num_people=6, shot_starts=(q, 2 * q, 3 * q),
                       min_person_height=90, max_person_height=160, min_speed=3.0, max_speed=6.0, seed=seed)


def write_jde_layout(root: Path, frames, gts, name: str = "synth") -> Path:
    """JDE's layout: images/<name>/NNNNNN.jpg, labels_with_ids/<name>/NNNNNN.txt, and a list file."""
    (root / "images" / name).mkdir(parents=True, exist_ok=True)
    (root / "labels_with_ids" / name).mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (img, boxes) in enumerate(zip(frames, gts, strict=True)):
        rel = Path("images") / name / f"{i + 1:06d}.jpg"
        cv2.imwrite(str(root / rel), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        with open(root / "labels_with_ids" / name / f"{i + 1:06d}.txt", "w") as fh:
            for pid, x1, y1, x2, y2 in boxes:
                fh.write(f"0 {pid} {(x1 + x2) / 2 / SRC_W:.6f} {(y1 + y2) / 2 / SRC_H:.6f} {(x2 - x1) / SRC_W:.6f} {(y2 - y1) / SRC_H:.6f}\n")
        lines.append(str(rel))
    listfile = root / f"{name}.train"
    listfile.write_text("\n".join(lines) + "\n")
    return listfile


# ----------------------------------------------------------------------------- hand cases
def test_label_path_and_list_file(tmp_path):
    assert label_path_for(Path("/d/MOT16/images/train/MOT16-02/img1/000001.jpg")) == Path(
        "/d/MOT16/labels_with_ids/train/MOT16-02/img1/000001.txt"
    )
    frames, gts = synth_frames(5, 8)
    frames, gts = frames[:3], gts[:3]
    listfile = write_jde_layout(tmp_path, frames, gts)
    images = read_image_list(listfile)
    assert images == read_image_list(tmp_path) == [tmp_path / "images" / "synth" / f"{i:06d}.jpg" for i in (1, 2, 3)]
    rows = np.loadtxt(label_path_for(images[0]), ndmin=2)
    assert rows.shape == (len(gts[0]), 6) and np.all(rows[:, 0] == 0)


def _brute_force_targets(boxes, anchors, stride, gh, gw):
    """Reference assignment, one anchor box at a time with portrait_builder.boxes.box_iou."""
    from portrait_builder.boxes import box_iou, cxcywh_to_xyxy

    tconf = np.zeros((len(anchors), gh, gw), int)
    gxyxy = cxcywh_to_xyxy(boxes[:, 1:5])
    for a, (aw, ah) in enumerate(anchors):
        for j in range(gh):
            for i in range(gw):
                iou = box_iou(cxcywh_to_xyxy([[i * stride, j * stride, aw, ah]]), gxyxy)[0]
                best = iou.max()
                tconf[a, j, i] = 1 if best > 0.5 else (0 if best < 0.4 else -1)
    return tconf


def test_anchor_assignment_against_brute_force_and_by_hand():
    anchors = torch.tensor([[16.0, 48.0], [20.0, 40.0], [8.0, 8.0], [40.0, 40.0]])
    # identity 5 at (17, 16) 16x48; identity -1 (no identity) at (70, 40) 38x42
    t = torch.tensor([[5, 17, 16, 16, 48], [-1, 70, 40, 38, 42]], dtype=torch.float32)
    tconf, tbox, tid = build_targets([t], anchors, 16, 4, 6)
    assert tconf.shape == (1, 4, 4, 6)
    np.testing.assert_array_equal(tconf[0].numpy(), _brute_force_targets(t.numpy(), anchors.numpy(), 16, 4, 6))
    # by hand: anchor 0 at cell (i=1, j=1) = (16, 16): IoU 720 / 816 = 0.88 -> foreground, identity 5,
    # deltas ((17 - 16) / 16, 0, log(16 / 16), log(48 / 48))
    assert tconf[0, 0, 1, 1] == 1 and tid[0, 0, 1, 1] == 5
    assert tbox[0, 0, 1, 1].tolist() == pytest.approx([1 / 16, 0, 0, 0])
    # anchor 1 (20x40) at the same cell: IoU 640 / 928 = 0.69 -> foreground, deltas (1/20, 0, log .8, log 1.2)
    assert tbox[0, 1, 1, 1].tolist() == pytest.approx([0.05, 0, math.log(0.8), math.log(1.2)], abs=1e-6)
    # anchor 0 at (16, 0): IoU 480 / 1056 = 0.45 -> ignored
    assert tconf[0, 0, 0, 1] == -1
    # the box without identity is foreground for anchor 3 (40x40 at (64, 48)) but carries identity -1
    assert tconf[0, 3, 3, 4] == 1 and tid[0, 3, 3, 4] == -1
    assert (tconf == 1).sum() == (tid >= 0).sum() + (tid[tconf == 1] == -1).sum()


def test_loss_on_zero_heads_by_hand():
    """Zero head maps: confidence logits equal, so L_conf = log 2 on every scale; with s = 0 the total is
    0.5 * sum(L_box + L_conf) and no identity term without a classifier."""
    from portrait_builder.detect.jde.model import build_jde_net

    model = build_jde_net("tiny-256x160", embedding_dim=8)
    for k in model.yolo_indices:
        y = model.module_list[k][0]
        for p in (y.s_c, y.s_r, y.s_id):
            p.data.zero_()
    heads = [torch.zeros(2, 24 + 8, 160 // s, 256 // s) for s in (32, 16, 8)]
    targets = [torch.tensor([[0, 100.0, 80.0, 30.0, 90.0]]), torch.zeros(0, 5)]
    loss, parts = jde_loss(model, heads, targets)
    assert parts["conf"] == pytest.approx(3 * math.log(2), rel=1e-5)
    assert parts["id"] == 0.0
    assert float(loss.detach()) == pytest.approx(0.5 * (parts["box"] + parts["conf"]), rel=1e-5)
    # uncertainty weighting: s_c = log 2 halves the confidence term and adds s_c per scale
    for k in model.yolo_indices:
        model.module_list[k][0].s_c.data.fill_(math.log(2))
    loss2, _ = jde_loss(model, heads, targets)
    assert float(loss2.detach()) == pytest.approx(0.5 * (parts["box"] + parts["conf"] / 2 + 3 * math.log(2)), rel=1e-5)
    loss2.backward()  # gradients reach the uncertainty scalars
    assert model.module_list[model.yolo_indices[0]][0].s_c.grad is not None


def test_average_precision_hand_case_and_sklearn():
    from sklearn.metrics import average_precision_score

    gts = [np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [20, 20, 30, 30]])]
    preds = [
        (np.array([[0, 0, 10, 10], [50, 50, 60, 60]]), np.array([0.9, 0.8])),
        (np.array([[1, 0, 10, 10], [0, 0, 10, 10]]), np.array([0.7, 0.6])),  # the second is a duplicate
    ]
    scores, tp, n_gt = match_detections(preds, gts)
    assert tp.tolist() == [True, False, True, False] and n_gt == 3
    # by hand: precision 1/1 at the first TP, 2/3 at the second, over 3 ground-truth boxes
    assert average_precision(preds, gts) == pytest.approx((1 + 2 / 3) / 3)
    assert average_precision(preds, gts) == pytest.approx(average_precision_score(tp, scores) * tp.sum() / n_gt)
    rng = np.random.default_rng(0)
    gts = [rng.uniform(0, 100, (5, 2)).repeat(2, 1) + [0, 0, 20, 40] for _ in range(6)]
    preds = [(g[rng.permutation(5)[:4]] + rng.normal(0, 4, (4, 4)), rng.uniform(0, 1, 4)) for g in gts]
    scores, tp, n_gt = match_detections(preds, gts)
    assert average_precision(preds, gts) == pytest.approx(average_precision_score(tp, scores) * tp.sum() / n_gt)


# ----------------------------------------------------------------------------- training on synthetic video
TRAIN_SEEDS = (1, 2, 3)  # three synthetic clips of 40 frames, four shots each
TEST_SEED = 99  # a clip never seen in training (other people, backgrounds, palettes)
EPOCHS = 14  # 210 iterations of batch 8 (1.5-2.5 minutes on the loaded 2-core development box)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train the tiny JDE once through ``portrait train-detector`` and reuse the checkpoint.

    Adam at 3e-3 with a 10-iteration burn-in instead of the published SGD schedule (lr 0.01, 1000-iteration
    burn-in, 30 epochs): the published schedule is the CLI default but needs far more than a CPU minute.
    One torch thread: on this shared 2-core box two threads under load run several times slower.
    """
    from portrait_builder.cli import main

    root = tmp_path_factory.mktemp("jde_data")
    frames, gts = [], []
    for k, seed in enumerate(TRAIN_SEEDS):
        f, g = synth_frames(seed, id_offset=6 * k)  # six people per clip
        frames += f
        gts += g
    listfile = write_jde_layout(root, frames, gts)
    run = root / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rc = main([
            "train-detector", str(listfile), "--arch", TINY, "--out", str(run), "--epochs", str(EPOCHS),
            "--batch-size", "8", "--optimizer", "adam", "--lr", "0.003", "--warmup", "10", "--embedding-dim", "32",
            "--device", "cpu",
        ])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    return run / "last.pt"


def _ap_on_clip(weights, seed: int) -> float:
    from portrait_builder.detect.jde.backend import JDEDetector

    frames, gts = synth_frames(seed)
    det = JDEDetector(weights=weights, device="cpu", conf_thres=0.05)  # a low threshold: AP ranks every box
    dets = det.detect(frames)
    return average_precision([(d.xyxy, d.scores) for d in dets], [np.array([b[1:] for b in g]).reshape(-1, 4) for g in gts])


@pytest.mark.slow
def test_checkpoint_layout_and_training_curve(trained):
    ckpt = torch.load(trained, map_location="cpu", weights_only=True)  # the published layout, no pickled code
    assert {"epoch", "model", "optimizer"} <= set(ckpt) and ckpt["epoch"] == EPOCHS - 1 and ckpt["arch"] == TINY
    assert ckpt["model"]["classifier.weight"].shape == (ckpt["nID"], 32) and 12 < ckpt["nID"] <= 18
    import json

    history = json.loads((trained.parent / "history.json").read_text())
    assert len(history) == EPOCHS
    # the detection parts of the loss fall by far over training
    assert history[-1]["conf"] < 0.5 * history[0]["conf"] and history[-1]["box"] < 0.5 * history[0]["box"]


@pytest.mark.slow
def test_trained_tiny_detects_unseen_synthetic_people(trained, tmp_path):
    """AP@0.5 on an unseen clip, against a floor computed here: the same network untrained (its AP is the
    chance level of this data) plus a margin, and at least 0.25. Measured when written, 14 epochs: 0.34 with
    this seed, 0.45 with seed 1 (10 epochs and other initialisations: 0.23 and 0.58); untrained 0.001. Short CPU
    training varies a lot with the initialisation, hence the modest floor. Recall is also capped below 1 by the
    published anchor rule: about a quarter of the synthetic boxes (partly outside the frame, arms out) have no
    anchor at IoU > 0.5."""
    from portrait_builder.detect.jde.model import build_jde_net

    torch.manual_seed(0)
    untrained = tmp_path / "untrained.pt"
    torch.save({"epoch": 0, "model": build_jde_net(TINY, embedding_dim=32).state_dict(), "optimizer": None, "arch": TINY}, untrained)
    chance = _ap_on_clip(untrained, TEST_SEED)
    ap = _ap_on_clip(trained, TEST_SEED)
    floor = max(0.25, chance + 0.2)
    assert ap >= floor, f"AP@0.5 {ap:.3f} below the floor {floor:.3f} (untrained: {chance:.3f})"


@pytest.mark.slow
def test_trained_tiny_as_ingest_detector_then_export_mot(trained, tmp_path):
    """``portrait ingest --detector jde --weights RUN/last.pt`` on an unseen synthetic video: the crops' boxes
    are the rendered people's boxes (at least 40% at IoU 0.5; 52% measured when written, with this weakly trained
    net); then ``portrait export-mot`` writes them back in JDE's layout."""
    from sqlalchemy import select

    from portrait_builder.boxes import box_iou
    from portrait_builder.cli import main
    from portrait_builder.store import Crop, Project, Track, Video
    from portrait_builder.synth import render_video

    video = tmp_path / "unseen.mp4"
    gt = render_video(video, synth_config(TEST_SEED + 1))
    proj = tmp_path / "proj"
    assert main(["init", str(proj)]) == 0
    assert main(["ingest", str(proj), str(video), "--detector", "jde", "--weights", str(trained), "--device", "cpu",
                 "--crop-every", "2", "--min-height", "0", "--no-progress"]) == 0
    project = Project.open(proj)
    with project.session() as s:
        v = s.execute(select(Video)).scalar_one()
        assert (v.detector, v.weights_fingerprint, v.status) == ("jde", hashlib.sha256(trained.read_bytes()).hexdigest(), "done")
        crops = s.execute(select(Crop.frame_index, Crop.track_id, Crop.x1, Crop.y1, Crop.x2, Crop.y2)).all()
        n_tracks = s.query(Track).count()
        emb_bytes = s.execute(select(Crop.embedding)).scalars().first()
    project.close()
    assert len(crops) >= 20 and n_tracks >= 2
    assert emb_bytes is not None and len(emb_bytes) == 32 * 2  # the tiny net's 32-d embedding, float16
    hits = [box_iou(np.array([c[2:]]), gt.frame_boxes(c[0])[1]).max(initial=0) >= 0.5 for c in crops]
    assert np.mean(hits) >= 0.4, f"only {np.mean(hits):.2f} of the crops match a rendered person at IoU 0.5"

    out = tmp_path / "mot"
    assert main(["export-mot", str(proj), str(out)]) == 0
    images = read_image_list(out / "portrait.train")
    frames_with_crops = sorted({c[0] for c in crops})
    assert [int(p.stem) - 1 for p in images] == frames_with_crops  # only frames with crops, 1-based names
    first = cv2.imread(str(images[0]))
    assert first.shape == (SRC_H, SRC_W, 3)
    rows = np.loadtxt(label_path_for(images[0]), ndmin=2)
    mine = sorted(c[2:] for c in crops if c[0] == frames_with_crops[0])
    back = sorted(zip(*(((rows[:, 2] - rows[:, 4] / 2) * SRC_W, (rows[:, 3] - rows[:, 5] / 2) * SRC_H,
                         (rows[:, 2] + rows[:, 4] / 2) * SRC_W, (rows[:, 3] + rows[:, 5] / 2) * SRC_H)), strict=True))
    np.testing.assert_allclose(np.array(back), np.clip(np.array(mine), 0, [SRC_W, SRC_H, SRC_W, SRC_H]), atol=0.01)
    assert set(np.loadtxt(label_path_for(images[-1]), ndmin=2)[:, 1]).issubset(set(range(n_tracks)))
    # the export is JDE training data: fine-tuning from the trained weights runs one epoch on it; weights of
    # another shape are refused with one line
    args = ["train-detector", str(out / "portrait.train"), "--arch", TINY, "--out", str(tmp_path / "run2"), "--epochs", "1",
            "--batch-size", "8", "--device", "cpu", "--weights", str(trained)]
    assert main([*args, "--embedding-dim", "8"]) == 2
    assert main([*args, "--embedding-dim", "32"]) == 0
    assert torch.load(tmp_path / "run2" / "last.pt", weights_only=True)["epoch"] == 0


def test_resume_continues_from_last_checkpoint(tmp_path):
    """Two one-epoch runs with --resume equal one run of two epochs in epoch count and optimizer state."""
    from portrait_builder.detect.jde.train import TrainConfig, train

    frames, gts = synth_frames(7, 8)
    listfile = write_jde_layout(tmp_path, frames[:4], gts[:4])
    cfg = TrainConfig(size="tiny-128x96", epochs=1, batch_size=4, lr=1e-3, optimizer="adam", warmup_iters=0,
                      embedding_dim=8, device="cpu")
    last = train(listfile, tmp_path / "run", cfg)
    first = torch.load(last, weights_only=True)
    assert first["epoch"] == 0
    last = train(listfile, tmp_path / "run", TrainConfig(**{**cfg.__dict__, "epochs": 2}), resume=True)
    second = torch.load(last, weights_only=True)
    assert second["epoch"] == 1
    import json

    assert [h["epoch"] for h in json.loads((tmp_path / "run" / "history.json").read_text())] == [0, 1]
    assert second["optimizer"]["state"][0]["step"].item() == 2  # one Adam step per epoch (4 images, batch 4)
    assert not torch.equal(first["model"]["module_list.0.conv_0.weight"], second["model"]["module_list.0.conv_0.weight"])
