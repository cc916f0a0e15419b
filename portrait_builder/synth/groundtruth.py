"""Label an ingested synthetic video from its ground truth, through the annotation service.

The demo and end-to-end tests need labels without a human: a named synthetic annotator per
attribute does what an annotator would (one attribute each; identity and gender by exemplar), so the
labels take the same validated, audited path as clicks in the app. A crop is matched to the ground-
truth person whose box overlaps it most in the same frame (IoU >= ``min_iou``); unmatched crops stay
unlabelled, as a tracker's false positives would.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from portrait_builder.boxes import box_iou
from portrait_builder.synth.render import SynthGroundTruth

ANNOTATOR_PREFIX = "synthetic-gt"


@dataclass(frozen=True)
class GroundTruthLabelling:
    crops: int
    matched: int
    identities: int
    labels: int


def match_crops(frame, gt: SynthGroundTruth, min_iou: float = 0.5) -> dict[int, int]:
    """``{crop_id: person_id}`` for the crops of one video (``frame``: project_frame rows of that video)."""
    matches: dict[int, int] = {}
    for frame_index, rows in frame.groupby("frame_index"):
        ids, boxes = gt.frame_boxes(int(frame_index))
        if len(ids) == 0:
            continue
        iou = box_iou(rows[["x1", "y1", "x2", "y2"]].to_numpy(np.float32), boxes)
        best = iou.argmax(axis=1)
        for crop_id, j, value in zip(rows["crop_id"], best, iou[np.arange(len(rows)), best], strict=True):
            if value >= min_iou:
                matches[int(crop_id)] = int(ids[j])
    return matches


def label_from_ground_truth(project, video_id: int, gt: SynthGroundTruth, *, min_iou: float = 0.5) -> GroundTruthLabelling:
    """Write identity, gender and every attribute of the matched crops of ``video_id``."""
    from portrait_builder.annotation import AnnotationService, add_annotator, list_annotators
    from portrait_builder.stats import project_frame

    taxonomy = project.taxonomy
    frame = project_frame(project, split=None)
    frame = frame[frame["video_id"] == video_id]
    matches = match_crops(frame, gt, min_iou)
    by_person: dict[int, list[int]] = defaultdict(list)
    for crop_id, person_id in sorted(matches.items()):
        by_person[person_id].append(crop_id)
    persons = {p.person_id: p for p in gt.persons}
    existing = {a.name for a in list_annotators(project)}
    for attr in taxonomy.attributes:
        if attr.name == "gender":
            continue  # set with identity, as in the app
        name = f"{ANNOTATOR_PREFIX}-{attr.name}"
        if name not in existing:
            add_annotator(project, name, role="annotator", attribute=attr.name)
    identity_attr = next(a.name for a in taxonomy.attributes if a.kind == "identity")
    labels = 0
    with AnnotationService(project, f"{ANNOTATOR_PREFIX}-{identity_attr}") as svc:
        for person_id, crop_ids in by_person.items():
            gender = persons[person_id].attributes.get("gender", "unsure")
            svc.new_identity(crop_ids[0], gender, name=f"person {person_id}", also=crop_ids[1:])
            labels += 2 * len(crop_ids)
    for attr in taxonomy.attributes:
        if attr.kind == "identity" or attr.name == "gender":
            continue
        with AnnotationService(project, f"{ANNOTATOR_PREFIX}-{attr.name}") as svc:
            for person_id, crop_ids in by_person.items():
                value = persons[person_id].attributes.get(attr.name)
                if value is None:
                    continue
                svc.set_label(crop_ids, attr.name, value, source="synthetic")
                labels += len(crop_ids)
    return GroundTruthLabelling(len(frame), len(matches), len(by_person), labels)
