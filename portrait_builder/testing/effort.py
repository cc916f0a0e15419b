"""A synthetic film with ground truth for the labelling-effort benchmark (benchmarks/annotation_effort.py)
and its tests, built straight into a real project store.

What films have (DESIGN.md section 7): a few characters seen in many shots, in other clothes after a
scene change; static attributes (gender, age, physique, height) per character; body posture, arm
posture and expression that change at a few points inside a track; stretches where the face is not
visible (turned away), where expression can only be "unsure"; unidentified background people; a
character's appearance broken into two tracks inside one shot (an occlusion).

Crops are real 256x128 JPEGs (rendered figures: per-outfit shirt and trouser colours, a face or the
back of a head); ``crops.embedding`` is the colour histogram the app already ranks exemplars by
(:func:`portrait_builder.testing.annotation_sample.color_embedding`); ``crops.face_embedding`` is a synthetic
128-d unit vector (a per-character centre, a per-track offset and per-crop noise, at distances like
dlib's: same person about 0.5, different people about 0.9) where the face is visible.

    world = build_world(Project.init(path), EffortSpec())
    world.truth[crop_id]  # {attribute: value}; identity is "char:<k>" or "unknown"
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageDraw
from sqlalchemy import update

from portrait_builder.store.models import Crop, Track, Video
from portrait_builder.store.project import Project
from portrait_builder.testing.annotation_sample import CROP_SIZE, color_embedding

STATIC = ("gender", "age", "physique", "height")
DYNAMIC = ("body_posture", "arm_posture", "expression")
UNKNOWN = "unknown"  # the taxonomy's identity value for a person who is no character
UNSURE = "unsure"  # every attribute's "not visible / unsure" value
FACE_DIM = 128
FRAME_SIZE = (1280, 720)
FPS = 24.0
BOX_W = 240.0  # person box width in the frame: a medium-wide shot
HEAD = (42, 6, 86, 56)  # the head in crop pixels: 44 px wide, above the clustering's 40 px floor for faces

# Value weights: films show far more standing people with arms down and neutral faces than anything else.
BODY = {"standing": 8, "walking": 4, "sitting": 4, "running": 1, "bending": 1, "squatting": 1, "lying": 1}
ARM = {"arms_down": 8, "gesturing": 3, "holding_object": 3, "arms_crossed": 2, "hand_to_face": 2,
       "hands_in_pockets": 2, "arm_raised": 1}  # fmt: skip
EXPRESSION = {("neutral",): 10, ("happiness",): 4, ("sadness",): 2, ("anger",): 1, ("surprise",): 1,
              ("fear", "surprise"): 1, ("happiness", "surprise"): 1, ("disgust",): 1}  # fmt: skip
AGE = {"young_adult": 4, "middle_aged": 3, "elderly": 1, "teenager": 1, "child": 1}


@dataclass(frozen=True)
class EffortSpec:
    """Sizes of the synthetic film. The defaults give about 2,800 crops."""

    characters: int = 8
    shots: int = 45
    shots_per_scene: int = 4  # outfits change only between scenes
    outfits_per_character: int = 2
    characters_per_shot: tuple[int, int] = (1, 3)
    background_per_shot: tuple[int, int] = (0, 2)
    shot_crops: tuple[int, int] = (20, 45)  # crops of a track that spans the whole shot
    crop_every: int = 5  # frames between two crops of a track
    broken_track_rate: float = 0.15  # a character's appearance in a shot split in two tracks (occlusion)
    back_turned_rate: float = 0.12  # tracks seen from behind: no face anywhere
    turn_away_rate: float = 0.25  # tracks with one stretch without a visible face
    background_face_rate: float = 0.4  # background people are far away: a face seldom
    change_probs: tuple[float, ...] = (0.45, 0.35, 0.2)  # P(0, 1, 2 change points) per track and dynamic attribute
    face_spread: float = 0.825  # character centres around a common mean: pairwise distance about 0.9
    track_noise: float = 0.02  # per-dimension noise of a track (lighting, pose)
    crop_noise: float = 0.025  # per-dimension noise of a crop
    seed: int = 0


@dataclass(frozen=True)
class CharacterTruth:
    index: int
    static: dict  # attribute -> value (gender, age, physique, height)
    outfits: tuple[tuple[tuple[int, int, int], tuple[int, int, int]], ...]  # (shirt, trousers) colours
    face_centre: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class TrackTruth:
    track_id: int
    shot: int
    person: str  # "char:<k>" or "bg:<n>"
    crop_ids: tuple[int, ...]  # in frame order
    change_points: dict  # dynamic attribute -> tuple of crop positions (1..len-1) where a new value starts

    @property
    def character(self) -> int | None:
        return int(self.person[5:]) if self.person.startswith("char:") else None


@dataclass
class EffortWorld:
    """The project, its one movie, and the ground truth of every crop."""

    project: Project
    video_id: int
    spec: EffortSpec
    characters: list[CharacterTruth]
    tracks: dict[int, TrackTruth]  # track id -> truth
    truth: dict[int, dict]  # crop id -> {attribute: value}; expression as a sorted list
    face_visible: dict[int, bool]  # crop id -> face visible
    crop_track: dict[int, int]  # crop id -> track id

    @property
    def crop_ids(self) -> list[int]:
        return sorted(self.truth)

    def character_of(self, crop_id: int) -> int | None:
        return self.tracks[self.crop_track[crop_id]].character


def _pick(rng: random.Random, weights: dict):
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def _colour(rng: random.Random, lo: int = 30, hi: int = 230) -> tuple[int, int, int]:
    return tuple(rng.randrange(lo, hi) for _ in range(3))  # type: ignore[return-value]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def _characters(spec: EffortSpec, rng: random.Random, nrng: np.random.Generator) -> list[CharacterTruth]:
    mean = _unit(nrng.normal(size=FACE_DIM))
    out = []
    for k in range(spec.characters):
        direction = nrng.normal(size=FACE_DIM)
        direction = _unit(direction - (direction @ mean) * mean)  # orthogonal to the mean: controlled spread
        static = {
            "gender": "female" if k % 2 else "male",
            "age": _pick(rng, AGE),
            "physique": rng.choice(["thin", "medium", "medium", "heavy"]),
            "height": rng.choice(["short", "average", "average", "tall"]),
        }
        outfits = tuple((_colour(rng), _colour(rng, 20, 160)) for _ in range(spec.outfits_per_character))
        out.append(CharacterTruth(k, static, outfits, _unit(mean + spec.face_spread * direction)))
    return out


def _segments(n: int, probs: tuple[float, ...], rng: random.Random) -> tuple[int, ...]:
    """Change points of one track: positions 1..n-1 where a new value starts, at least 3 crops apart."""
    k = rng.choices(range(len(probs)), weights=probs)[0]
    if n < 8:
        return ()
    points: list[int] = []
    for _ in range(50):
        if len(points) == k:
            break
        p = rng.randrange(3, n - 2)
        if all(abs(p - q) >= 3 for q in points):
            points.append(p)
    return tuple(sorted(points))


def _values_along(n: int, points: tuple[int, ...], weights: dict, rng: random.Random) -> list:
    """One value per crop: a new (different) value at every change point."""
    out, value = [], _pick(rng, weights)
    bounds = (*points, n)
    start = 0
    for end in bounds:
        out += [value] * (end - start)
        start = end
        nxt = value
        while nxt == value and len(weights) > 1:
            nxt = _pick(rng, weights)
        value = nxt
    return out


def _face_mask(n: int, person_is_character: bool, spec: EffortSpec, rng: random.Random) -> list[bool]:
    if not person_is_character:
        return [rng.random() < spec.background_face_rate] * n
    r = rng.random()
    if r < spec.back_turned_rate:
        return [False] * n
    mask = [True] * n
    if r < spec.back_turned_rate + spec.turn_away_rate and n >= 6:
        length = rng.randrange(max(2, n // 5), max(3, n // 2))
        start = rng.randrange(1, n - length)
        mask[start:start + length] = [False] * length
    return mask


def _render(shirt, trousers, bg, face: bool, hair, k: int) -> Image.Image:
    img = Image.new("RGB", CROP_SIZE, bg)
    d = ImageDraw.Draw(img)
    dx = (k % 3) - 1
    head = (HEAD[0] + dx, HEAD[1], HEAD[2] + dx, HEAD[3])
    if face:
        d.ellipse(head, fill=(224, 180, 150))
        d.ellipse((52 + dx, 24, 58 + dx, 30), fill=(30, 30, 30))
        d.ellipse((70 + dx, 24, 76 + dx, 30), fill=(30, 30, 30))
        d.line((56 + dx, 44, 72 + dx, 44), fill=(120, 40, 40), width=2)
    else:
        d.ellipse(head, fill=hair)  # the back of the head
    d.rectangle((36 + dx, 58, 92 + dx, 140), fill=shirt)
    d.rectangle((40 + dx, 140, 62 + dx, 240), fill=trousers)
    d.rectangle((66 + dx, 140, 88 + dx, 240), fill=trousers)
    return img


def build_world(project: Project, spec: EffortSpec = EffortSpec(), title: str = "effort_film") -> EffortWorld:
    """Insert one synthetic movie (video, tracks, crops with JPEGs and embeddings) and return its ground truth.

    Deterministic for a given ``spec.seed``: two builds give the same crops in the same order.
    """
    rng = random.Random(spec.seed)
    nrng = np.random.default_rng(spec.seed)
    chars = _characters(spec, rng, nrng)
    popularity = [1.0 / (k + 1) ** 0.7 for k in range(spec.characters)]  # a lead, a few supporting roles
    planned = []  # (shot, person, first frame, n crops, static, outfit, hair)
    frame = 0
    background = 0
    bg_static: dict[str, dict] = {}
    for shot in range(spec.shots):
        scene = shot // spec.shots_per_scene
        n_chars = rng.randint(*spec.characters_per_shot)
        present: list[int] = []
        while len(present) < min(n_chars, spec.characters):
            k = rng.choices(range(spec.characters), weights=popularity)[0]
            if k not in present:
                present.append(k)
        shot_len = rng.randint(*spec.shot_crops)
        for k in present:
            outfit = chars[k].outfits[(scene * 7 + k) % len(chars[k].outfits)]
            if rng.random() < spec.broken_track_rate and shot_len >= 16:
                cut = rng.randrange(6, shot_len - 6)
                gap = 2  # crops missed while the character is hidden
                planned.append((shot, f"char:{k}", frame, cut, outfit))
                planned.append((shot, f"char:{k}", frame + (cut + gap) * spec.crop_every, shot_len - cut - gap, outfit))
            else:
                planned.append((shot, f"char:{k}", frame, shot_len, outfit))
        for _ in range(rng.randint(*spec.background_per_shot)):
            background += 1
            person = f"bg:{background}"
            bg_static[person] = {
                "gender": rng.choice(["male", "female"]),
                "age": _pick(rng, AGE),
                "physique": rng.choice(["thin", "medium", "heavy", UNSURE]),
                "height": rng.choice(["short", "average", "tall", UNSURE, UNSURE]),
            }
            start = rng.randrange(0, max(1, shot_len // 2))
            length = rng.randint(max(4, shot_len // 3), shot_len - start) if shot_len - start > 4 else shot_len - start
            planned.append((shot, person, frame + start * spec.crop_every, length, (_colour(rng), _colour(rng, 20, 160))))
        frame += (shot_len + 4) * spec.crop_every

    shot_bg = [_colour(rng, 120, 250) for _ in range(spec.shots)]
    track_truths: dict[int, TrackTruth] = {}
    truth: dict[int, dict] = {}
    face_visible: dict[int, bool] = {}
    crop_track: dict[int, int] = {}
    bg_centres: dict[str, np.ndarray] = {}

    def tx(s) -> int:
        video = Video(path=f"{title}.mp4", fingerprint=f"effort-{title}-{spec.seed}", title=title, fps=FPS,
                      frame_count=frame, width=FRAME_SIZE[0], height=FRAME_SIZE[1], status="done")  # fmt: skip
        s.add(video)
        s.flush()
        for tracker_id, (shot, person, first, n, outfit) in enumerate(planned, start=1):
            is_char = person.startswith("char:")
            static = chars[int(person[5:])].static if is_char else bg_static[person]
            if is_char:
                centre = chars[int(person[5:])].face_centre
            else:
                centre = bg_centres.setdefault(person, _unit(nrng.normal(size=FACE_DIM)))
            track_centre = _unit(centre + nrng.normal(scale=spec.track_noise, size=FACE_DIM))
            frames = [first + i * spec.crop_every for i in range(n)]
            track = Track(video_id=video.id, tracker_id=tracker_id, first_frame=frames[0], last_frame=frames[-1],
                          shot_index=shot)  # fmt: skip
            s.add(track)
            s.flush()
            faces = _face_mask(n, is_char, spec, rng)
            points = {attr: _segments(n, spec.change_probs, rng) for attr in DYNAMIC}
            body = _values_along(n, points["body_posture"], BODY, rng)
            arm = _values_along(n, points["arm_posture"], ARM, rng)
            expr = _values_along(n, points["expression"], EXPRESSION, rng)
            hair = _colour(rng, 10, 120)
            x0 = rng.uniform(50, FRAME_SIZE[0] - 350)
            ids = []
            for i, f in enumerate(frames):
                img = _render(outfit[0], outfit[1], shot_bg[shot], faces[i], hair, i)
                rel = f"{title}/t{tracker_id:04d}/f{f:06d}.jpg"
                dest = project.crop_root / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                img.save(dest, "JPEG", quality=85)
                x1 = x0 + 2.0 * i
                box = (x1, 100.0, x1 + BOX_W, 100.0 + 2 * BOX_W)  # 1:2, so the crop is the box scaled
                scale = BOX_W / CROP_SIZE[0]
                face_box = ((x1 + HEAD[0] * scale, 100.0 + HEAD[1] * scale, x1 + HEAD[2] * scale,
                             100.0 + HEAD[3] * scale) if faces[i] else (None,) * 4)  # fmt: skip
                face_emb = None
                if faces[i]:
                    vec = _unit(track_centre + nrng.normal(scale=spec.crop_noise, size=FACE_DIM))
                    face_emb = vec.astype("<f2").tobytes()
                crop = Crop(
                    video_id=video.id, track_id=track.id, frame_index=f, timestamp=f / FPS,
                    x1=box[0], y1=box[1], x2=box[2], y2=box[3], score=0.9, path=rel,
                    embedding=color_embedding(img), shot_index=shot, face_visible=faces[i],
                    face_x1=face_box[0], face_y1=face_box[1], face_x2=face_box[2], face_y2=face_box[3],
                    face_embedding=face_emb,
                )
                s.add(crop)
                s.flush()
                ids.append(crop.id)
                crop_track[crop.id] = track.id
                face_visible[crop.id] = faces[i]
                truth[crop.id] = {
                    "identity": person if is_char else UNKNOWN,
                    **static,
                    "body_posture": body[i],
                    "arm_posture": arm[i],
                    "expression": sorted(expr[i]) if faces[i] else [UNSURE],
                }
            track_truths[track.id] = TrackTruth(track.id, shot, person, tuple(ids), points)
        return video.id

    video_id = project.run_write(tx)
    return EffortWorld(project, video_id, spec, chars, track_truths, truth, face_visible, crop_track)


def move_crop(world: EffortWorld, crop_id: int, track_id: int) -> None:
    """A tracker error: put one crop into another track (the crop keeps its person, so its truth holds;
    the change points of the two tracks no longer describe their crops)."""
    old = world.crop_track[crop_id]

    def tx(s) -> None:
        s.execute(update(Crop).where(Crop.id == crop_id).values(track_id=track_id))

    world.project.run_write(tx)
    world.crop_track[crop_id] = track_id
    src, dst = world.tracks[old], world.tracks[track_id]
    world.tracks[old] = replace(src, crop_ids=tuple(c for c in src.crop_ids if c != crop_id))
    world.tracks[track_id] = replace(dst, crop_ids=tuple(sorted((*dst.crop_ids, crop_id))))
