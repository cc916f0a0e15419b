"""The onnx backend with a tiny real ONNX model built here with onnx.helper: it "detects" the bright
rectangle of its input (bounding box of pixels whose mean > 0.5), so the test checks real onnxruntime
inference, the letterbox, and that boxes come back in source pixels."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from portrait_builder.detect import create_detector
from portrait_builder.errors import UserError

IN_H, IN_W = 192, 256


def _bright_box_model(path, with_embedding: bool) -> None:
    c = lambda name, arr: helper.make_node("Constant", [], [name], value=helper.make_tensor(  # noqa: E731
        name + "_t", TensorProto.FLOAT, np.shape(arr), np.asarray(arr, np.float32).ravel().tolist()))
    nodes = [
        c("half", [0.5]),
        c("iw", np.arange(1, IN_W + 1, dtype=np.float32).reshape(1, IN_W)),
        c("ih", np.arange(1, IN_H + 1, dtype=np.float32).reshape(1, IN_H)),
        c("rw", (IN_W - np.arange(IN_W, dtype=np.float32)).reshape(1, IN_W)),
        c("rh", (IN_H - np.arange(IN_H, dtype=np.float32)).reshape(1, IN_H)),
        c("W", [float(IN_W)]), c("H", [float(IN_H)]),
        helper.make_node("ReduceMean", ["images"], ["grey"], axes=[1], keepdims=0),  # (1, H, W)
        helper.make_node("Greater", ["grey", "half"], ["mask_b"]),
        helper.make_node("Cast", ["mask_b"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMax", ["mask"], ["cols"], axes=[1], keepdims=0),  # (1, W)
        helper.make_node("ReduceMax", ["mask"], ["rows"], axes=[2], keepdims=0),  # (1, H)
        helper.make_node("Mul", ["cols", "iw"], ["cw"]), helper.make_node("ReduceMax", ["cw"], ["x2"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["rows", "ih"], ["rh2"]), helper.make_node("ReduceMax", ["rh2"], ["y2"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["cols", "rw"], ["cr"]), helper.make_node("ReduceMax", ["cr"], ["x1r"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["W", "x1r"], ["x1"]),
        helper.make_node("Mul", ["rows", "rh"], ["rr"]), helper.make_node("ReduceMax", ["rr"], ["y1r"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["H", "y1r"], ["y1"]),
        helper.make_node("ReduceMax", ["cols"], ["score"], axes=[1], keepdims=1),
        helper.make_node("Concat", ["x1", "y1", "x2", "y2", "score"], ["row"], axis=1),  # (1, 5)
        helper.make_node("Unsqueeze", ["row"], ["boxes"], axes=[1]),  # (1, 1, 5)
    ]
    outputs = [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 1, 5])]
    if with_embedding:
        nodes += [c("emb_c", np.array([[[3.0, 4.0]]], np.float32)), helper.make_node("Mul", ["emb_c", "score"], ["emb"])]
        outputs.append(helper.make_tensor_value_info("emb", TensorProto.FLOAT, [1, 1, 2]))
    graph = helper.make_graph(nodes, "bright_box", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, IN_H, IN_W])], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.mark.parametrize("with_embedding", [False, True])
def test_onnx_boxes_come_back_in_source_pixels(tmp_path, with_embedding):
    path = tmp_path / "m.onnx"
    _bright_box_model(path, with_embedding)
    det = create_detector("onnx", weights=str(path), device="cpu")
    assert det.input_hw == (IN_H, IN_W) and len(det.fingerprint) == 64
    frames = []
    truth = [(100, 60, 180, 220), (300, 30, 340, 120)]
    for x1, y1, x2, y2 in truth:
        f = np.full((360, 480, 3), 40, np.uint8)  # 480x360 -> letterbox scale 256/480, no vertical pad
        f[y1:y2, x1:x2] = 230
        frames.append(f)
    out = det.detect(frames)
    for d, t in zip(out, truth, strict=True):
        assert len(d) == 1
        np.testing.assert_allclose(d.xyxy[0], t, atol=480 / IN_W * 1.5)  # one model pixel of rounding
        np.testing.assert_allclose(np.linalg.norm(d.embeddings, axis=1), 1.0, atol=1e-5)
        assert d.embeddings.shape[1] == (2 if with_embedding else det.embedding_dim)
    empty = det.detect([np.zeros((360, 480, 3), np.uint8)])[0]
    assert len(empty) == 0  # score 0 < threshold


def test_onnx_needs_weights(tmp_path):
    with pytest.raises(UserError, match="--weights"):
        create_detector("onnx")
    with pytest.raises(UserError, match="not found"):
        create_detector("onnx", weights=str(tmp_path / "none.onnx"))
