"""The Qt-free annotation service the desktop app (``annotator_gui``) and the demo call.

Plain dataclasses out; the store stays behind it. See :class:`AnnotationService`.
"""

from portrait_builder.annotation.identities import CharacterInfo, MergeResult, list_identities, rename_identity
from portrait_builder.annotation.kappa import cohen_kappa
from portrait_builder.annotation.service import (
    Action,
    ActionLabel,
    AnnotationPermissionError,
    AnnotationService,
    AnnotatorInfo,
    CropItem,
    Exemplar,
    IdentityInfo,
    KappaResult,
    Progress,
    ReviewRow,
    TrackCrop,
    add_annotator,
    get_annotator,
    list_annotators,
    merge_identities,
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
