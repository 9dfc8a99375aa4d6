"""The one label schema every dataset adapter maps into.

Expressions share one vocabulary (``EXPRESSIONS``); dataset-specific extras (Yale's ``sleepy``, ``wink``,
lighting variants) are kept as their own strings so nothing is lost, but only the shared ones are used for
FER classes. Poses use a small vocabulary as well (``POSES``) plus an optional yaw in degrees.
"""
from __future__ import annotations

from dataclasses import dataclass, field

EXPRESSIONS = ("neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")

# Common spellings in dataset labels -> shared vocabulary.
EXPRESSION_ALIASES = {
    "neutral": "neutral", "ne": "neutral", "neu": "neutral", "normal": "neutral", "calm": "neutral",
    "anger": "anger", "angry": "anger", "an": "anger", "ang": "anger",
    "contempt": "contempt", "co": "contempt", "contemptuous": "contempt",
    "disgust": "disgust", "disgusted": "disgust", "di": "disgust", "dis": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "fe": "fear", "fea": "fear",
    "happy": "happy", "happiness": "happy", "ha": "happy", "hap": "happy", "smile": "happy",
    "smiling": "happy", "joy": "happy",
    "sadness": "sadness", "sad": "sadness", "sa": "sadness",
    "surprise": "surprise", "surprised": "surprise", "su": "surprise", "sur": "surprise",
}

POSES = ("frontal", "left_3quarter", "right_3quarter", "left_profile", "right_profile", "other")
#: a record's pose when its dataset does not say: ``nfgan prepare`` records the pose of the measured yaw
POSE_FROM_YAW = "from_yaw"


def is_expressive(label: str) -> bool:
    """Whether a face with this expression label shows an expression: not ``neutral`` and not one of a set's
    neutral variants (Yale's ``neutral_glasses``, ``neutral_leftlight``, ...: a neutral face with glasses or under
    side light). The "neutral on expressive inputs" rates of the evaluation count these faces only."""
    key = label.strip().lower()
    return bool(key) and key != "neutral" and not key.startswith("neutral_")


def canonical_expression(label: str) -> str:
    """Map a dataset's expression label to the shared vocabulary; unknown labels are kept, lower-cased."""
    key = label.strip().lower()
    return EXPRESSION_ALIASES.get(key, key)


@dataclass
class FaceRecord:
    """One input image of a dataset, before preparation."""

    source_path: str          # absolute path of the photo
    subject: str              # identity label, unique within the dataset
    expression: str           # shared vocabulary where possible (see canonical_expression)
    pose: str = "frontal"     # one of POSES
    dataset: str = ""         # adapter name
    extra: dict = field(default_factory=dict)  # dataset-specific fields (sequence id, frame, intensity...)
