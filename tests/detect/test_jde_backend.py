"""The ``jde`` detector backend: its fast path (confident rows only) against the published pipeline
(full (B, N, 518) decode, score filter, NMS, letterbox undone), the registry, errors, and CPU vs CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import nms

from portrait_builder.boxes import cxcywh_to_xyxy
from portrait_builder.common import file_digest
from portrait_builder.detect.base import Detector
from portrait_builder.detect.jde.backend import (
    CPU_GPU_BOX_ATOL_PX,
    CPU_GPU_EMB_COS_MIN,
    CPU_GPU_SCORE_ATOL,
    JDEDetector,
)
from portrait_builder.detect.jde.letterbox import letterbox, unletterbox_boxes
from portrait_builder.detect.jde.model import build_jde_net
from portrait_builder.detect.registry import create_detector
from portrait_builder.errors import UserError

SIZE = "tiny-320x192"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A tiny JDE whose confidence bias makes a few dozen anchors confident, saved as our trainer does."""
    torch.manual_seed(3)
    model = build_jde_net(SIZE, embedding_dim=16)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial running statistics
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    for i in (k - 4 for k in model.yolo_indices):
        conv = model.module_list[i][0]
        with torch.no_grad():
            conv.bias.view(4, 6)[:, 5] += 0.3
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    torch.save({"epoch": 0, "model": model.state_dict(), "optimizer": None, "arch": SIZE, "embedding_dim": 16}, path)
    return path


def _frames(n, seed=0, shape=(270, 480, 3)):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


def published_pipeline(model, frames, conf_thres, nms_thres):
    """JDE's own order of operations, on the (B, N, 6 + E) output: filter, NMS, scale_coords, clamp."""
    width, height = model.arch.width, model.arch.height
    chws, infos = zip(*(letterbox(f, width, height) for f in frames), strict=True)
    with torch.no_grad():
        out = model(torch.from_numpy(np.stack(chws)))
    results = []
    for rows, info in zip(out, infos, strict=True):
        rows = rows[rows[:, 4] > conf_thres]
        xyxy = torch.from_numpy(cxcywh_to_xyxy(rows[:, :4].numpy()))
        keep = nms(xyxy, rows[:, 4], nms_thres)
        results.append((unletterbox_boxes(xyxy[keep].numpy(), info), rows[keep, 4].numpy(), rows[keep, 6:].numpy()))
    return results


def test_detect_equals_published_pipeline(weights):
    det = JDEDetector(weights=weights, device="cpu", size=None, conf_thres=0.55, nms_thres=0.4, batch_size=2)
    assert isinstance(det, Detector)
    assert (det.name, det.embedding_dim, det.batch_size, det.size) == ("jde", 16, 2, SIZE)
    assert det.fingerprint == file_digest(weights) and len(det.fingerprint) == 64
    frames = _frames(3) + _frames(1, seed=1, shape=(300, 200, 3))  # batches of 2 + 2, two aspect ratios
    got = det.detect(frames)
    ref = published_pipeline(det.model, frames, 0.55, 0.4)
    assert len(got) == 4
    total = 0
    for d, (boxes, scores, emb) in zip(got, ref, strict=True):
        ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        assert len(d) == ok.sum()
        np.testing.assert_allclose(d.xyxy, boxes[ok], atol=1e-3)
        np.testing.assert_allclose(d.scores, scores[ok], atol=1e-6)
        np.testing.assert_allclose(d.embeddings, emb[ok], atol=1e-5)
        assert np.all(np.diff(d.scores) <= 0)  # NMS order: decreasing score
        total += len(d)
    assert total > 0
    h, w = frames[0].shape[:2]
    assert got[0].xyxy.min() >= 0 and got[0].xyxy[:, [0, 2]].max() <= w and got[0].xyxy[:, [1, 3]].max() <= h
    np.testing.assert_allclose(np.linalg.norm(got[0].embeddings, axis=1), 1, atol=1e-5)


def test_registry_and_errors(weights, tmp_path):
    det = create_detector("jde", weights=str(weights), device="cpu", conf_thres=0.6)
    assert det.conf_thres == 0.6 and det.size == SIZE
    assert det.detect([]) == []
    with pytest.raises(UserError, match="the jde detector needs --weights PATH"):
        create_detector("jde", device="cpu")
    with pytest.raises(UserError, match="JDE weights not found"):
        JDEDetector(weights=tmp_path / "missing.pt", device="cpu")
    with pytest.raises(UserError, match=r"does not match the JDE 1088x608 network \(checkpoint is for a tiny-WxH variant\?\)"):
        JDEDetector(weights=weights, device="cpu", size="1088x608")
    with pytest.raises(UserError, match="fp16 needs CUDA"):
        JDEDetector(weights=weights, device="cpu", fp16=True)
    with pytest.raises(ValueError, match="BGR uint8"):
        det.detect([np.zeros((10, 10), np.uint8)])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the CPU path is the one tested here")
def test_cpu_and_cuda_fp16_agree(weights):
    frames = _frames(4, seed=5)
    cpu = JDEDetector(weights=weights, device="cpu").detect(frames)
    gpu = JDEDetector(weights=weights, device="cuda").detect(frames)  # fp16 autocast + channels_last
    for a, b in zip(cpu, gpu, strict=True):
        # match each CPU box to its nearest GPU box; boxes near the score threshold may flip, so compare the
        # confident ones
        strong = a.scores > 0.6
        for box, score, emb in zip(a.xyxy[strong], a.scores[strong], a.embeddings[strong], strict=True):
            j = int(np.argmin(np.abs(b.xyxy - box).sum(1)))
            size = max(box[2] - box[0], box[3] - box[1])
            assert np.abs(b.xyxy[j] - box).max() <= CPU_GPU_BOX_ATOL_PX + 0.01 * size
            assert abs(b.scores[j] - score) <= CPU_GPU_SCORE_ATOL
            assert float(np.dot(b.embeddings[j], emb)) >= CPU_GPU_EMB_COS_MIN
