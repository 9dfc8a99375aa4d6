"""What the generator reads for a face: the one rule, applied by training and by inference alike.

1. Mirror (Sec. 4.2, ``data.flip_left_poses``): a face whose occluded side is on the image's left - turned left
   and not mirrored by ``nfgan prepare`` (manifest column ``flipped``), or turned right and mirrored - is
   mirrored, so the occluded side is always on the right. Targets (frontal faces) are never mirrored.
2. Frontalise (``data.frontalize_inputs``): a turned face (3/4 or profile) is warped onto the frontal landmark
   layout with its 68 landmarks (``nfgan.data.frontalize``), its far half filled by the mirror image of the near
   half or left as warped (``data.frontalize_fill``: ``mirror``, the default, or ``none``); L_id still compares
   the output with the unwarped (mirrored) input.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from nfgan.data.frontalize import FILLS, frontalize_batch, is_turned


class MissingLandmarksError(ValueError):
    pass


def occluded_left(poses: Sequence[str], flipped: Sequence | None = None) -> np.ndarray:
    """Per face: is its occluded side on the image's left (turned left and not mirrored by ``nfgan prepare``,
    or turned right and mirrored)."""
    flipped = [False] * len(poses) if flipped is None else flipped
    return np.asarray([str(p).startswith("left") != (str(f).strip().lower() in ("1", "true", "yes"))
                       for p, f in zip(poses, flipped)], bool)


@dataclass(frozen=True)
class InputRule:
    """The generator-input rule of one model (from its training config's ``data`` section)."""

    flip_left_poses: bool = False
    frontalize: bool = False
    fill: str = "mirror"

    def __post_init__(self):
        if self.fill not in FILLS:
            raise ValueError(f"frontalisation fill {self.fill!r}: expected one of {', '.join(FILLS)}")

    @classmethod
    def from_config(cls, cfg: dict) -> "InputRule":
        d = (cfg or {}).get("data", {}) or {}
        return cls(bool(d.get("flip_left_poses", False)), bool(d.get("frontalize_inputs", False)),
                   str(d.get("frontalize_fill") or "mirror"))

    def as_dict(self) -> dict:
        """What a model file or ONNX graph records of the rule (read back by :meth:`from_record`)."""
        return {"flip_left_poses": self.flip_left_poses, "frontalize": self.frontalize, "fill": self.fill}

    @classmethod
    def from_record(cls, rule: dict) -> "InputRule":
        """The rule :meth:`as_dict` wrote (a record without ``fill``, from before it existed: ``mirror``)."""
        return cls(bool(rule.get("flip_left_poses", False)), bool(rule.get("frontalize", False)),
                   str(rule.get("fill") or "mirror"))

    def mirror_mask(self, poses: Sequence[str] | None, flipped: Sequence | None = None) -> np.ndarray:
        """Which faces are mirrored before the generator (none without poses or without ``flip_left_poses``)."""
        if not self.flip_left_poses or poses is None:
            return np.zeros(0 if poses is None else len(poses), bool)
        return occluded_left(poses, flipped)

    def frontalize_turned(self, faces_u8: np.ndarray, poses: Sequence[str], landmarks: np.ndarray | None,
                          mirrored: Sequence[bool], who: str = "this model", strict: bool = False) -> np.ndarray:
        """``faces_u8`` (already mirrored where ``mirrored``) with every turned face frontalised using its 68
        landmarks (``N x 68 x 2``, coordinates of the unmirrored crop). A turned face without finite landmarks
        is an error with ``strict``, else it goes to the generator unfrontalised with a warning."""
        x = np.array(faces_u8, dtype=np.uint8, copy=True)
        turned = [i for i, p in enumerate(poses) if is_turned(p)]
        if not self.frontalize or not turned:
            return x
        if landmarks is None:
            raise MissingLandmarksError(f"{who}: frontalises turned inputs and needs their 68 landmarks (nfgan "
                                        "prepare's landmarks.npy, or AlignedFace.landmarks68)")
        lm = np.asarray(landmarks, dtype=np.float64)
        missing = [i for i in turned if not np.isfinite(lm[i]).all()]
        if missing:
            if strict:
                raise MissingLandmarksError(f"{who}: turned input(s) without landmarks cannot be frontalised: "
                                            f"rows {missing[:5]}")
            warnings.warn(f"{len(missing)} turned face(s) without landmarks (rows {missing[:5]}) go to the "
                          "generator unfrontalised")
            turned = [i for i in turned if i not in set(missing)]
        if turned:
            mirrored = np.asarray(mirrored, bool)
            x[turned] = frontalize_batch(x[turned], lm[turned], [poses[i] for i in turned], mirrored=mirrored[turned],
                                         fill=self.fill)
        return x

    def apply(self, faces_u8: np.ndarray, poses: Sequence[str] | None = None, flipped: Sequence | None = None,
              landmarks: np.ndarray | None = None, who: str = "this model") -> np.ndarray:
        """uint8 ``N x S x S`` faces as the generator reads them (mirrored, then frontalised)."""
        faces_u8 = np.asarray(faces_u8)
        flip = self.mirror_mask(poses, flipped) if poses is not None else np.zeros(len(faces_u8), bool)
        x = np.where(flip[:, None, None], faces_u8[:, :, ::-1], faces_u8).astype(np.uint8)
        if not self.frontalize or poses is None:
            return x
        return self.frontalize_turned(x, poses, landmarks, flip, who)
