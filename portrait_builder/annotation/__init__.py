"""The Qt-free annotation service the desktop app (``annotator_gui``) and the demo call.

Plain dataclasses out; the store stays behind it. See :class:`AnnotationService`.
"""

from portrait_builder.annotation.annotators import add_annotator, get_annotator, list_annotators
from portrait_builder.annotation.identities import CharacterInfo, MergeResult, list_identities, rename_identity
from portrait_builder.annotation.kappa import cohen_kappa
from portrait_builder.annotation.service import AnnotationService, merge_identities
from portrait_builder.annotation.types import (
    Action,
    ActionLabel,
    AnnotationPermissionError,
    AnnotatorInfo,
    CropItem,
    Exemplar,
    IdentityInfo,
    KappaResult,
    Progress,
    ReviewRow,
    TrackCrop,
)

__all__ = [
    "Action",
    "ActionLabel",
    "AnnotationPermissionError",
    "AnnotationService",
    "AnnotatorInfo",
    "CharacterInfo",
    "CropItem",
    "Exemplar",
    "IdentityInfo",
    "KappaResult",
    "MergeResult",
    "Progress",
    "ReviewRow",
    "TrackCrop",
    "add_annotator",
    "cohen_kappa",
    "get_annotator",
    "list_annotators",
    "list_identities",
    "merge_identities",
    "rename_identity",
]
