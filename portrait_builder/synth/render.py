"""Render synthetic people videos with exact ground truth.

Each person is a figure with human proportions (head about 1/7.5 of the height, shoulders wider than
hips, arms hanging at the sides, two jointed legs whose gap opens and closes with the stride), a
skin-tone head and hands, a top in a colour of its own (plain or two-tone), darker trousers, shading
across the body and a thin dark outline, drawn with anti-aliased OpenCV primitives so that OpenCV's HOG
people detector (trained on upright INRIA pedestrians) finds them: on the default clip it finds 0.8-0.85
of all ground-truth boxes and about 0.9 of the figures in full view, at precision 0.98-1.0.
People enter and leave the frame, walk in both directions at different depths (so they cross and the
nearer one occludes the farther), and the video is cut into shots with a different background and
palette each; people may reappear in a later shot with the same identity and clothes. Of a few random
layouts per shot the one with the fewest long overlaps and edge frames is used (see ``_plan``).
Opt-in, what films have besides (all off by default, so the default clip is unchanged): fades through
black and dissolves between shots instead of hard cuts, close-up shots (one person's head and shoulders
fill the frame) and a person entering from the frame's edge after each shot has begun.

Ground truth: one MOTChallenge row per visible person per frame
``frame (1-based), id, x, y, w, h, 1, 1, visibility, -1`` where the box is the tight box of the
figure's pixels clipped to the frame and visibility the fraction of those pixels not hidden by
nearer figures.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from portrait_builder.errors import UserError

log = logging.getLogger(__name__)

#: Layouts drawn per shot; the one whose people overlap least is rendered (see _plan).
PLAN_CANDIDATES = 12
# Figure proportions (fractions of the figure height), tuned so OpenCV's HOG people detector fires.
# Widths: shoulder, hip, leg segments and arm thickness; hip_x: each hip joint's offset from the centre;
# leg_swing, knee, arm_swing: amplitudes in radians; rim: brightness of the outline (times background).
# Wider leg stances and arms across the torso lowered HOG's SVM margin (measured per walking phase).
SHAPE = {
    "shoulder": 0.23,
    "hip": 0.19,
    "hip_x": 0.02,
    "thigh": 0.085,
    "shin": 0.065,
    "arm": 0.05,
    "leg_swing": 0.25,
    "knee": 0.5,
    "arm_swing": 0.3,
    "rim": 0.55,
}


@dataclass(frozen=True)
class SynthConfig:
    """What to render. Defaults give a 10 s clip, small enough for tests, that HOG detects well."""

    width: int = 480
    height: int = 320
    fps: float = 10.0
    num_frames: int = 100
    num_people: int = 4
    #: Frames where a new shot starts (besides 0); each shot gets its own background and palette.
    shot_starts: tuple[int, ...] = (50,)
    #: Figure heights in pixels (HOG's 64x128 window finds people from about 90 px up).
    min_person_height: int = 120
    max_person_height: int = 160
    #: Walking speed range in pixels per frame.
    min_speed: float = 3.0
    max_speed: float = 7.0
    seed: int = 0
    #: "h264" (mp4/mkv) or "mjpeg" (avi); None picks by the file suffix.
    codec: str | None = None
    #: Quality: x264 CRF, or MJPEG q (2 best .. 31 worst).
    quality: int = 18
    #: How each shot of ``shot_starts`` begins: "cut", "fade" (through black) or "dissolve"; empty: all hard
    #: cuts. A gradual transition lasts ``transition_frames`` frames centred on its shot start, which is the
    #: frame an editor marks as the cut: for a dissolve the first frame in which the new shot weighs more
    #: than the old one, for a fade the first frame of the fade-in (the frame after the darkest point).
    transitions: tuple[str, ...] = ()
    transition_frames: int = 12
    #: Shots (0-based index) filmed as a close-up: one person, head and shoulders filling the frame.
    close_ups: tuple[int, ...] = ()
    #: In every shot that is not a close-up, one person enters from the frame's edge after the shot began.
    edge_entrance: bool = False

    def __post_init__(self):
        if self.width < 64 or self.height < 64 or self.num_frames < 1 or self.num_people < 1 or self.fps <= 0:
            raise UserError("synth: need width, height >= 64, num_frames >= 1, num_people >= 1, fps > 0")
        if not 32 <= self.min_person_height <= self.max_person_height:
            raise UserError("synth: need 32 <= min_person_height <= max_person_height")
        if any(not 0 < s < self.num_frames for s in self.shot_starts):
            raise UserError(f"synth: shot_starts must lie in (0, {self.num_frames})")
        if self.transitions and len(self.transitions) != len(self.shot_starts):
            raise UserError(f"synth: transitions needs one entry per shot start ({len(self.shot_starts)}), got {len(self.transitions)}")
        if set(self.transitions) - set(TRANSITIONS):
            raise UserError(f"synth: unknown transition in {self.transitions!r}; valid: {', '.join(TRANSITIONS)}")
        if self.transition_frames < 2:
            raise UserError("synth: transition_frames must be >= 2")
        if any(not 0 <= s <= len(self.shot_starts) for s in self.close_ups):
            raise UserError(f"synth: close_ups are shot indices in [0, {len(self.shot_starts)}]")
        spans = transition_spans(self)
        bounds = [(0, 0), *[(first, last) for _, first, _, last in spans], (self.num_frames, self.num_frames)]
        if any(b[0] <= a[1] for a, b in zip(bounds, bounds[1:], strict=False)):
            raise UserError("synth: transitions overlap each other or the clip's ends; space the shot starts further apart")


TRANSITIONS = ("cut", "fade", "dissolve")


def transition_spans(config: SynthConfig) -> list[tuple[str, int, int, int]]:
    """``(kind, first_frame, cut_frame, last_frame)`` per shot start, ascending; a hard cut's first and last
    frame are its cut frame (the new shot's first frame)."""
    kinds = config.transitions or ("cut",) * len(config.shot_starts)
    half = config.transition_frames // 2
    spans = []
    for cut, kind in sorted(zip(config.shot_starts, kinds, strict=True)):
        spans.append((kind, cut, cut, cut) if kind == "cut" else (kind, cut - half, cut, cut + half - 1))
    return spans


@dataclass(frozen=True)
class Person:
    person_id: int  # 1-based, the MOT id
    height_px: float
    width_factor: float
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    long_hair: bool
    shirt: tuple[int, int, int]
    shirt2: tuple[int, int, int]
    pattern: str  # plain | split (two-tone top)
    trousers: tuple[int, int, int]
    shoes: tuple[int, int, int]
    attributes: dict = field(default_factory=dict)


@dataclass
class SynthGroundTruth:
    """Ground truth of a rendered video.

    mot: (K, 10) float64 MOTChallenge rows (frame 1-based, id, x, y, w, h, conf=1, class=1, visibility, -1).
    persons: the people (attributes per person: taxonomy attribute -> value name; expression is
        a list). shot_starts: first frame index (0-based) of each shot, starting with 0.
    appearances: (person_id, shot_index, first_frame, last_frame) per person per shot (0-based frames).
    transitions: (kind, first_frame, cut_frame, last_frame) per shot start; ``cuts`` the cut frames. Inside
        a fade or dissolve the rows are those of the shot the frame belongs to, visibility times its weight.
    """

    config: SynthConfig
    mot: np.ndarray
    persons: list[Person]
    shot_starts: list[int]
    appearances: list[tuple[int, int, int, int]]
    path: str | None = None
    #: (kind, first_frame, cut_frame, last_frame) per transition: see :func:`transition_spans`.
    transitions: list[tuple[str, int, int, int]] = field(default_factory=list)

    @property
    def cuts(self) -> list[int]:
        """The cut list an editor gives: first frame index (0-based) of each new shot; for a gradual
        transition the frame named in :attr:`SynthConfig.transitions`."""
        return list(self.shot_starts[1:])

    def frame_boxes(self, frame_index: int, min_visibility: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(ids (N,), xyxy (N, 4)) of the people visible in 0-based ``frame_index``."""
        rows = self.mot[(self.mot[:, 0] == frame_index + 1) & (self.mot[:, 8] >= min_visibility)]
        xyxy = rows[:, 2:6].astype(np.float32).copy()
        xyxy[:, 2:] += xyxy[:, :2]
        return rows[:, 1].astype(np.int64), xyxy

    def write_mot(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [
            f"{int(r[0])},{int(r[1])},{r[2]:.2f},{r[3]:.2f},{r[4]:.2f},{r[5]:.2f},1,1,{r[8]:.3f},-1" for r in self.mot
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def to_dict(self) -> dict:
        return {
            "config": asdict(self.config),
            "path": self.path,
            "shot_starts": self.shot_starts,
            "transitions": [list(t) for t in self.transitions],
            "persons": [asdict(p) for p in self.persons],
            "appearances": [list(a) for a in self.appearances],
            "rows": int(len(self.mot)),
        }

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        return path


# --------------------------------------------------------------------------------------------- people
def _colour(rng: np.random.Generator, lo: int = 30, hi: int = 230) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi, 3))


def _distinct_colours(rng: np.random.Generator, n: int) -> list[tuple[int, int, int]]:
    """n saturated colours with hues spread around the circle (distinct identities for the embedding)."""
    hues = (np.arange(n) * (180 / max(n, 1)) + rng.uniform(0, 180)) % 180
    rng.shuffle(hues)
    out = []
    for h in hues:
        hsv = np.uint8([[[int(h), int(rng.integers(150, 255)), int(rng.integers(120, 230))]]])
        out.append(tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]))
    return out


def _choose_attributes(rng: np.random.Generator, taxonomy) -> dict:
    attrs: dict = {}
    for a in taxonomy.attributes:
        if a.kind == "identity":
            continue
        classes = list(a.classes)
        if a.name == "body_posture" and "walking" in classes:
            attrs[a.name] = "walking"  # they all walk
        elif a.name == "arm_posture" and "arms_down" in classes:
            attrs[a.name] = "arms_down"
        elif a.multilabel:
            attrs[a.name] = [classes[int(rng.integers(len(classes)))]]
        else:
            attrs[a.name] = classes[int(rng.integers(len(classes)))]
    return attrs


def make_people(config: SynthConfig, taxonomy=None) -> list[Person]:
    if taxonomy is None:
        from portrait_builder.taxonomy import load_taxonomy

        taxonomy = load_taxonomy(None)
    rng = np.random.default_rng(config.seed)
    shirts = _distinct_colours(rng, config.num_people)
    people = []
    for i in range(config.num_people):
        attrs = _choose_attributes(rng, taxonomy)
        scale = {"short": 0.9, "tall": 1.1}.get(attrs.get("height"), 1.0)
        width = {"thin": 0.9, "heavy": 1.2}.get(attrs.get("physique"), 1.0)
        h = float(rng.uniform(config.min_person_height, config.max_person_height)) * scale
        h = float(np.clip(h, config.min_person_height, config.max_person_height * 1.05))
        skin = tuple(int(v) for v in rng.choice([[120, 160, 210], [90, 130, 180], [60, 90, 140], [150, 180, 230]]))
        people.append(
            Person(
                person_id=i + 1,
                height_px=h,
                width_factor=width,
                skin=skin,
                hair=_colour(rng, 10, 90),
                long_hair=attrs.get("gender") == "female",
                shirt=shirts[i],
                shirt2=_colour(rng),
                pattern=["plain", "split", "plain"][i % 3],
                trousers=_colour(rng, 20, 110),
                shoes=_colour(rng, 0, 60),
                attributes=attrs,
            )
        )
    return people


def _draw_person(canvas: np.ndarray, mask: np.ndarray, p: Person, cx: float, foot_y: float, h: float, phase: float, facing: int) -> None:
    """Draw one figure on ``canvas`` and set its pixels to 255 in ``mask``.

    Human proportions (fractions of the height ``h``, head top to soles): head 0.13, shoulders 0.23 wide
    at 0.16, hips 0.19 wide at 0.5, legs 0.48 long in two segments with a knee, arms 0.32 long hanging at
    the sides. Legs and arms swing in opposite phase; the back limbs are darker. The figure is drawn in a
    small region of interest around it, shaded across its width and given a thin dark outline, so its
    silhouette has the clear vertical edges of a real pedestrian.
    """
    top = foot_y - h
    pad = int(0.3 * h) + 4
    x0, y0 = int(math.floor(cx - pad)), int(math.floor(top - 4))
    x1, y1 = int(math.ceil(cx + pad)), int(math.ceil(foot_y + 4))
    H, W = canvas.shape[:2]  # noqa: N806
    rx0, ry0, rx1, ry1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
    if rx1 <= rx0 or ry1 <= ry0:
        return
    lw, lh = x1 - x0, y1 - y0
    img = np.zeros((lh, lw, 3), np.uint8)
    m = np.zeros((lh, lw), np.uint8)
    f = 16.0
    ox, oy = cx - x0, foot_y - y0  # figure origin (centre of the feet) in local pixels

    def P(fx, fy):  # noqa: N802 - (fraction of h sideways, fraction of h up from the top) -> fixed point
        return (int(round((ox + facing * fx * h) * f)), int(round((oy - h + fy * h) * f)))

    def line(a, b, colour, thick):
        t = max(1, int(round(thick * h)))
        cv2.line(img, P(*a), P(*b), colour, t, cv2.LINE_AA, 4)
        cv2.line(m, P(*a), P(*b), 255, t, cv2.LINE_8, 4)

    def poly(pts, colour):
        arr = np.array([P(*q) for q in pts], np.int32)
        cv2.fillPoly(img, [arr], colour, cv2.LINE_AA, 4)
        cv2.fillPoly(m, [arr], 255, cv2.LINE_8, 4)

    def ellipse(c, axes, colour):
        cen, ax = P(*c), (int(round(axes[0] * h * f)), int(round(axes[1] * h * f)))
        cv2.ellipse(img, cen, ax, 0, 0, 360, colour, -1, cv2.LINE_AA, 4)
        cv2.ellipse(m, cen, ax, 0, 0, 360, 255, -1, cv2.LINE_8, 4)

    def limb(x, y, l1, l2, a1, a2):
        """Two segments from (x, y): lengths l1, l2 at angles a1, a2 from straight down (positive = forward)."""
        k = (x + l1 * math.sin(a1), y + l1 * math.cos(a1))
        e = (k[0] + l2 * math.sin(a2), k[1] + l2 * math.cos(a2))
        return k, e

    sw = SHAPE["shoulder"] * p.width_factor / 2  # half shoulder width
    hw = SHAPE["hip"] * p.width_factor / 2
    shade = lambda c, s: tuple(int(min(255, v * s)) for v in c)  # noqa: E731
    legs = []
    for k, ph in ((0, phase), (1, phase + math.pi)):
        thigh = SHAPE["leg_swing"] * math.sin(ph)
        bend = SHAPE["knee"] * max(0.0, math.sin(ph + 0.6 * math.pi))  # the knee flexes while the leg swings forward
        knee, ankle = limb(SHAPE["hip_x"] * (1 if k else -1), 0.5, 0.245, 0.225, thigh, thigh - bend)
        legs.append((k, knee, ankle, math.sin(ph)))
    arms = []
    for k, ph in ((0, phase + math.pi), (1, phase)):
        # Arms hang at the sides and swing outwards a little, never across the torso (that would hide the
        # torso's edges): the swing of a walker seen from the front three-quarters.
        side = 1 if k else -1
        a = side * (0.06 + SHAPE["arm_swing"] * 0.5 * (1 + math.sin(ph)))
        elbow, hand = limb(side * sw, 0.18, 0.17, 0.15, a, a + side * 0.06)
        arms.append((k, elbow, hand))
    # back leg (the one swinging backwards) first, darker
    back_leg = min(legs, key=lambda q: q[3])
    front_leg = max(legs, key=lambda q: q[3])
    for (k, knee, ankle, _), s in ((back_leg, 0.75), (front_leg, 1.0)):
        hip = (SHAPE["hip_x"] * (1 if k else -1), 0.5)
        line(hip, knee, shade(p.trousers, s), SHAPE["thigh"] * p.width_factor)
        line(knee, ankle, shade(p.trousers, s), SHAPE["shin"] * p.width_factor)
        line((ankle[0] - 0.015, ankle[1] + 0.012), (ankle[0] + 0.05, ankle[1] + 0.012), shade(p.shoes, s), 0.035)
    # back arm
    k, elbow, hand = arms[0]
    sh = (-sw, 0.18)
    line(sh, elbow, shade(p.shirt, 0.8), SHAPE["arm"])
    line(elbow, hand, shade(p.shirt, 0.8), SHAPE["arm"] * 0.85)
    # pelvis and torso
    poly([(-hw, 0.47), (hw, 0.47), (hw * 1.02, 0.545), (-hw * 1.02, 0.545)], p.trousers)
    torso = [(-sw * 0.8, 0.15), (sw * 0.8, 0.15), (sw, 0.175), (sw * 0.86, 0.3), (hw * 0.92, 0.41), (hw, 0.5), (-hw, 0.5), (-hw * 0.92, 0.41), (-sw * 0.86, 0.3), (-sw, 0.175)]
    poly(torso, p.shirt)
    # Only two-tone tops: stripes and open jackets cut the torso's gradients and lowered HOG's margin.
    if p.pattern == "split":
        poly([(-sw * 0.88, 0.33), (sw * 0.88, 0.33), (hw, 0.5), (-hw, 0.5)], p.shirt2)
    # front arm, hands
    k, elbow, hand = arms[1]
    sh = (sw, 0.18)
    line(sh, elbow, p.shirt, SHAPE["arm"])
    line(elbow, hand, p.skin, SHAPE["arm"] * 0.75)
    for _, _, hnd in arms:
        ellipse(hnd, (0.022, 0.026), p.skin)
    # neck, head, hair
    line((0, 0.11), (0, 0.16), shade(p.skin, 0.85), 0.045)
    ellipse((0.004, 0.068), (0.047, 0.066), p.skin)
    ellipse((-0.006, 0.045), (0.05, 0.045), p.hair)
    if p.long_hair:
        poly([(-0.052, 0.05), (0.01, 0.05), (0.0, 0.17), (-0.055, 0.17)], p.hair)
    # Shade across the width (rounder body) and outline the silhouette with a thin dark rim.
    xs = (np.arange(lw, dtype=np.float32) - ox) / max(sw * h, 1.0)
    gain = (1.08 - 0.22 * np.clip(xs * facing, -1.5, 1.5) ** 2).clip(0.7, 1.1)[None, :, None]
    img = np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    rim = cv2.dilate(m, np.ones((3, 3), np.uint8)) & ~m
    sub = (slice(ry0 - y0, ry1 - y0), slice(rx0 - x0, rx1 - x0))
    roi = canvas[ry0:ry1, rx0:rx1]
    mm, rr = m[sub] > 0, rim[sub] > 0
    roi[rr] = (roi[rr].astype(np.uint16) * SHAPE["rim"]).astype(np.uint8)
    roi[mm] = img[sub][mm]
    mask[ry0:ry1, rx0:rx1] |= m[sub]


# ---------------------------------------------------------------------------------------- backgrounds
def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A textured scene: smooth colour noise, a floor, a few soft blocks; its own palette per shot."""
    base = np.array(_colour(rng, 60, 200), np.float32)
    accent = np.array(_colour(rng, 40, 220), np.float32)
    low = rng.normal(0, 1, (height // 32 + 2, width // 32 + 2, 1)).astype(np.float32)
    low = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)[..., None]
    # Gentle low-frequency variation between two related colours: texture without strong edges.
    img = base + 0.25 * np.clip(low, -2, 2) * (accent - base)
    horizon = int(height * rng.uniform(0.35, 0.5))
    floor = np.array(_colour(rng, 50, 180), np.float32)
    img[horizon:] = 0.35 * img[horizon:] + 0.65 * floor
    for _ in range(int(rng.integers(3, 7))):  # soft buildings / furniture above the horizon
        x0 = int(rng.integers(0, width))
        bw = int(rng.integers(width // 12, width // 4))
        bh = int(rng.integers(height // 10, horizon))
        col = np.array(_colour(rng, 40, 220), np.float32)
        img[horizon - bh : horizon, x0 : x0 + bw] = 0.5 * img[horizon - bh : horizon, x0 : x0 + bw] + 0.5 * col
    img += rng.normal(0, 4, img.shape).astype(np.float32)  # fine texture
    img = cv2.GaussianBlur(img, (0, 0), 1.2)
    return np.clip(img, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------ the scene
@dataclass
class _Walk:
    person: Person
    shot: int
    start: int  # frame where it enters
    x0: float
    speed: float  # px / frame, signed
    foot_y: float
    phase0: float
    #: Figure height on screen when set (close-ups); else it follows from the depth (``_shown_height``).
    height: float = 0.0


def _shown_height(config: SynthConfig, p: Person, foot_y: float) -> float:
    """Figure height on screen: people lower in the frame (nearer) are drawn a little larger."""
    return p.height_px * (0.85 + 0.15 * (foot_y / config.height))


def _close_up(config: SynthConfig, person: Person, shot: int, s0: int, rng: np.random.Generator) -> _Walk:
    """One person filmed from the chest up: the figure is 2.6 frame heights tall with its head near the
    top, so head, shoulders and upper arms fill the frame; it drifts sideways a little (a handheld camera,
    a breath) but does not walk, so its legs (out of frame) and arms stay still."""
    h = 2.6 * config.height
    top = float(rng.uniform(0.05, 0.12)) * config.height
    cx = float(rng.uniform(0.35, 0.65)) * config.width
    drift = float(rng.uniform(0.1, 0.4)) * (1 if rng.random() < 0.5 else -1)
    return _Walk(person, shot, s0, cx, drift, top + h, float(rng.uniform(0, 2 * math.pi)), height=h)


def _shot_candidate(config: SynthConfig, present: list[Person], shot: int, s0: int, s1: int, rng: np.random.Generator) -> list[_Walk]:
    W, H = config.width, config.height  # noqa: N806
    n_shot = s1 - s0
    walks = []
    for k, p in enumerate(present):
        direction = 1 if (k + shot) % 2 == 0 else -1
        speed = direction * float(rng.uniform(config.min_speed, config.max_speed))
        half = 0.2 * p.height_px
        # Enter from a side, early or a little after the cut, or start inside the frame.
        if config.edge_entrance and k == 0:
            # Opt-in: the shot opens without this person, who then walks in from the edge.
            x0 = -half if direction > 0 else W + half
            start = s0 + int(rng.integers(1, max(2, n_shot // 4)))
        elif rng.random() < 0.5:
            x0 = -half if direction > 0 else W + half
            start = s0 + int(rng.integers(0, max(1, n_shot // 3)))
        else:
            x0 = float(rng.uniform(0.1 * W, 0.9 * W))
            start = s0
        # HOG only scores windows inside the (slightly padded) image, and its window reaches about 0.21
        # person heights beyond head and feet: keep that margin so a figure in full view is detectable.
        lo, hi = 1.25 * p.height_px, H - 0.22 * p.height_px
        foot_y = float(rng.uniform(lo, hi)) if hi > lo else float(0.5 * (lo + hi))
        walks.append(_Walk(p, shot, start, x0, speed, foot_y, float(rng.uniform(0, 2 * math.pi))))
    return walks


def _overlaps(config: SynthConfig, walks: list[_Walk], s0: int, s1: int) -> tuple[int, int]:
    """(frames x pairs where two figures overlap heavily, frames x people cut by the frame's edge,
    crossings of people walking opposite ways)."""
    t = np.arange(s0, s1, dtype=np.float64)
    boxes = []
    for w in walks:
        h = _shown_height(config, w.person, w.foot_y)
        cx = w.x0 + w.speed * (t - w.start)
        on = (t >= w.start) & (cx > -0.2 * h) & (cx < config.width + 0.2 * h)
        boxes.append((cx - 0.18 * h, cx + 0.18 * h, w.foot_y - h, w.foot_y, on, cx))
    heavy = crossings = 0
    edge = sum(int((b[4] & ((b[0] < 0) | (b[1] > config.width))).sum()) for b in boxes)
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            a, b = boxes[i], boxes[j]
            iw = np.clip(np.minimum(a[1], b[1]) - np.maximum(a[0], b[0]), 0, None)
            ih = max(0.0, min(a[3], b[3]) - max(a[2], b[2]))
            inter = iw * ih
            union = (a[1] - a[0]) * (a[3] - a[2]) + (b[1] - b[0]) * (b[3] - b[2]) - inter
            both = a[4] & b[4]
            heavy += int(((inter / union > 0.3) & both).sum())
            order = np.sign(a[5] - b[5])[both]
            if walks[i].speed * walks[j].speed < 0 and len(order) and (order != order[0]).any():
                crossings += 1
    return heavy, edge, crossings


def _plan(config: SynthConfig, people: list[Person], rng: np.random.Generator) -> tuple[list[int], list[_Walk]]:
    """Who walks where in each shot.

    A few candidate layouts are drawn per shot and the one that keeps people apart best is used, under
    the condition that (where a candidate offers it) two people walking opposite ways cross (crossings are
    short occlusions, the interesting case for the tracker, while two people walking side by side would hide
    each other for the whole shot). Half of the time figures spend cut by the frame's edge counts too:
    entries and exits stay (every candidate has them) but do not dominate the clip.
    """
    starts = [0, *sorted(config.shot_starts)]
    ends = [*starts[1:], config.num_frames]
    walks: list[_Walk] = []
    for shot, (s0, s1) in enumerate(zip(starts, ends, strict=True)):
        # Every shot shows most people; a person may be absent from a shot and come back later.
        present = [p for p in people if shot == 0 or rng.random() < 0.8] or people[:1]
        if shot in config.close_ups:
            walks.append(_close_up(config, people[shot % len(people)], shot, s0, rng))
            continue
        best, best_key = None, None
        for _ in range(PLAN_CANDIDATES):
            cand = _shot_candidate(config, present, shot, s0, s1, rng)
            heavy, edge, crossings = _overlaps(config, cand, s0, s1)
            key = (crossings == 0, heavy + 0.5 * edge)
            if best_key is None or key < best_key:
                best, best_key = cand, key
        walks.extend(best)
    return starts, walks


def render_frames(config: SynthConfig, taxonomy=None) -> Iterator[tuple[int, np.ndarray, list[tuple[int, np.ndarray, float]]]]:
    """Yield ``(frame_index, bgr_frame, [(person_id, xyxy, visibility), ...])`` for every frame.

    Inside a fade or dissolve the boxes are those of the shot the frame belongs to (before the cut frame
    the old shot, from it on the new one), with visibility scaled by that shot's weight in the picture.
    """
    people = make_people(config, taxonomy)
    rng = np.random.default_rng(config.seed + 7919)
    starts, walks = _plan(config, people, rng)
    backgrounds = [_background(rng, config.width, config.height) for _ in starts]
    spans = transition_spans(config)
    shot = 0
    for t in range(config.num_frames):
        while shot + 1 < len(starts) and t >= starts[shot + 1]:
            shot += 1
        frame, boxes = _render_shot(config, walks, backgrounds[shot], starts[shot], shot, t)
        span = next((sp for sp in spans if sp[1] <= t <= sp[3] and sp[1] < sp[3]), None)
        if span is not None:
            kind, first, cut, last = span
            new = t >= cut
            if kind == "dissolve":
                weight_new = (t - first + 0.5) / (last - first + 1)
                other_shot = shot - 1 if new else shot + 1
                other, _ = _render_shot(config, walks, backgrounds[other_shot], starts[other_shot], other_shot, t)
                own = weight_new if new else 1.0 - weight_new
                mixed = own * frame.astype(np.float32) + (1.0 - own) * other.astype(np.float32)
            else:  # fade: out to black over the first half, in from black over the second
                own = (t - cut + 0.5) / (last + 1 - cut) if new else (cut - t - 0.5) / (cut - first)
                mixed = own * frame.astype(np.float32)
            frame = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
            boxes = [(pid, b, vis * own) for pid, b, vis in boxes]
        yield t, frame, boxes


def _render_shot(config: SynthConfig, walks: list[_Walk], background: np.ndarray, s0: int, shot: int, t: int) -> tuple[np.ndarray, list[tuple[int, np.ndarray, float]]]:
    """Frame ``t`` as shot ``shot`` (starting at ``s0``) films it, with its ground-truth boxes. ``t`` may
    lie outside the shot (the overlap of a dissolve): people who are in at the shot's start are extrapolated
    backwards along their walk, the others walk on after its end."""
    frame = background.copy()
    active = [w for w in walks if w.shot == shot and (t >= w.start or w.start == s0)]
    active.sort(key=lambda w: w.foot_y)  # farther (higher on screen) first: nearer ones occlude
    masks = []
    for w in active:
        steps = t - w.start
        cx = w.x0 + w.speed * steps
        h = w.height or _shown_height(config, w.person, w.foot_y)
        if cx < -h or cx > config.width + h:
            masks.append(None)
            continue
        # Legs swing once per stride of about 0.8 body heights; phase follows the distance walked.
        phase = w.phase0 + abs(w.speed) * steps * 2 * math.pi / (0.8 * h)
        mask = np.zeros(frame.shape[:2], np.uint8)
        _draw_person(frame, mask, w.person, cx, w.foot_y, h, phase, 1 if w.speed > 0 else -1)
        masks.append(mask)
    boxes = []
    for i, (w, m) in enumerate(zip(active, masks, strict=True)):
        if m is None:
            continue
        ys, xs = np.nonzero(m)
        if len(xs) < 20:
            continue
        occluders = [mm for mm in masks[i + 1 :] if mm is not None]
        hidden = np.zeros_like(m)
        for mm in occluders:
            hidden |= mm
        visible = float(np.count_nonzero(m & ~hidden)) / float(len(xs))
        xyxy = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
        boxes.append((w.person.person_id, xyxy, visible))
    return frame, boxes


def _codec_args(path: Path, config: SynthConfig) -> list[str]:
    codec = config.codec or ("mjpeg" if path.suffix.lower() == ".avi" else "h264")
    if codec == "mjpeg":
        return ["-c:v", "mjpeg", "-q:v", str(config.quality), "-pix_fmt", "yuvj420p"]
    if codec == "h264":
        return ["-c:v", "libx264", "-preset", "veryfast", "-crf", str(config.quality), "-pix_fmt", "yuv420p", "-movflags", "+faststart"]
    raise UserError(f"synth: unknown codec {codec!r}; valid codecs: h264, mjpeg")


def render_video(path: str | Path, config: SynthConfig | None = None, *, taxonomy=None) -> SynthGroundTruth:
    """Render ``config`` to ``path`` with ffmpeg (frames piped as raw bgr24) and return its ground truth."""
    from portrait_builder.video import ffmpeg_exe

    config = config or SynthConfig()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part" + path.suffix)
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{config.width}x{config.height}", "-r", f"{config.fps}", "-i", "pipe:",
        *_codec_args(path, config), "-r", f"{config.fps}", str(tmp),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    rows = []
    people = make_people(config, taxonomy)
    try:
        for t, frame, boxes in render_frames(config, taxonomy):
            for pid, b, vis in boxes:
                rows.append([t + 1, pid, b[0], b[1], b[2] - b[0], b[3] - b[1], 1, 1, vis, -1])
            proc.stdin.write(frame.tobytes())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read().decode("utf-8", "replace")
    if proc.wait() != 0:
        tmp.unlink(missing_ok=True)
        raise UserError(f"synth: ffmpeg could not write {path}: {err.strip().splitlines()[-1] if err.strip() else 'error'}")
    tmp.replace(path)
    mot = np.array(rows, np.float64).reshape(-1, 10)
    starts = [0, *sorted(config.shot_starts)]
    appearances = []
    for pid in sorted({int(r) for r in mot[:, 1]}):
        frames = mot[mot[:, 1] == pid, 0].astype(int) - 1
        for s, s0 in enumerate(starts):
            s1 = starts[s + 1] if s + 1 < len(starts) else config.num_frames
            inside = frames[(frames >= s0) & (frames < s1)]
            if len(inside):
                appearances.append((pid, s, int(inside.min()), int(inside.max())))
    return SynthGroundTruth(config, mot, people, starts, appearances, str(path), transition_spans(config))
