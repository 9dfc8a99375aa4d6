"""What the generator reads for a face: the one rule, applied by training and by inference alike.

1. Mirror (Sec. 4.2, ``data.flip_left_poses``): a face whose occluded side is on the image's left - turned left
   and not mirrored by ``nfgan prepare`` (manifest column ``flipped``), or turned right and mirrored - is
   mirrored, so the occluded side is always on the right. Targets (frontal faces) are never mirrored.
2. Frontalise (``data.frontalize_inputs``): a turned face (3/4 or profile) is warped onto the frontal landmark
   layout with its 68 landmarks (``nfgan.data.frontalize``), its far half filled by the mirror image of the near
   half or left as warped (``data.frontalize_fill``: ``mirror``, the default, or ``none``); L_id still compares
   the output with the unwarped (mirrored) input. With ``both`` the generator reads two channels, the mirror-filled
   frontalisation and the plain warp (the far half as warped: stretched, but the person's own), so that it can take
   the geometry from the first and identity cues from the second; every face that is not frontalised reads the
   same face in both channels. With ``data.frontalize_shape: own`` the warp's destination is a prediction of the
   person's own frontal landmarks (``nfgan.data.frontal_shape``) instead of the mean layout.
3. Neutralise (``data.neutralize_shape``): every other face (frontal, or of unknown pose) is warped so that its
   68 landmarks sit where the learned map of ``nfgan.data.neutral_shape`` puts the same person's neutral face:
   an open mouth closes, raised brows come down, before the generator reads it; or, with
   ``data.neutralize_mode: frame``, the crop is only re-framed (moved, turned, scaled) as that neutral face would
   be framed by alignment; ``warp_frame`` does both; with ``data.neutralize_threshold``, only faces whose framing
   is off by more than the threshold get (a share of) the step. L_id again compares with the unwarped input.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from nfgan.data.align import mirror_landmarks, occluded_left
from nfgan.data.frontalize import FILLS, frontalize_batch, is_turned

#: what fills the far half of a frontalised turned input: :data:`nfgan.data.frontalize.FILLS`, or ``both`` (two
#: channels: the ``mirror`` fill, then the ``none`` fill)
INPUT_FILLS = FILLS + ("both",)


def input_channels(frontalize: bool, fill: str) -> int:
    """How many channels a generator reads under a rule that frontalises (or not) with ``fill``: 2 for ``both``
    with frontalisation on, else 1 (what ``model.in_channels`` must be)."""
    return 2 if frontalize and fill == "both" else 1


class MissingLandmarksError(ValueError):
    pass


def fit_subjects(shape) -> set[str] | None:
    """The people a neutral-shape or frontal-shape map was fit on: the training and validation people of each
    source's split file it records, none for the identity map, ``None`` where the map records no sources or a split
    cannot be read."""
    from nfgan.data.pairs import SplitError, load_splits

    if shape.info.get("kind") == "identity":
        return set()
    sources = shape.info.get("sources")
    if not sources:
        return None
    people: set[str] = set()
    for src in sources:
        try:
            split = load_splits(src["splits"])
        except (SplitError, KeyError, TypeError):
            return None
        people.update(str(s) for part in ("train", "val") for s in split.get(part, []))
    return people


@dataclass(frozen=True)
class InputRule:
    """The generator-input rule of one model (from its training config's ``data`` section)."""

    flip_left_poses: bool = False
    frontalize: bool = False
    fill: str = "mirror"
    neutralize: bool = False
    #: the map step 3 uses (``nfgan.data.neutral_shape.NeutralShape``); None = the one nfgan ships
    shape: object = field(default=None, compare=False, repr=False)
    #: step 3's mode (``nfgan.data.neutral_shape.MODES``): ``warp`` onto the predicted landmarks, ``frame`` or
    #: ``warp_frame``
    mode: str = "warp"
    #: step 3's threshold (``data.neutralize_threshold``, ``nfgan.data.neutral_shape.strength``): 0 = every face
    threshold: float = 0.0
    #: where step 2 warps a turned face (``data.frontalize_shape``, ``nfgan.data.frontal_shape.SHAPES``): the mean
    #: layout (``template``) or the person's own predicted frontal landmarks (``own``)
    frontal: str = "template"
    #: the map ``own`` uses (``nfgan.data.frontal_shape.FrontalShape``); None = the one nfgan ships
    frontal_map: object = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if not 0 <= self.threshold < 1:
            raise ValueError(f"neutralisation threshold {self.threshold!r}: expected a share of the crop side in "
                             "[0, 1)")
        if self.fill not in INPUT_FILLS:
            raise ValueError(f"frontalisation fill {self.fill!r}: expected one of {', '.join(INPUT_FILLS)}")
        from nfgan.data.frontal_shape import SHAPES
        from nfgan.data.neutral_shape import MODES

        if self.mode not in MODES:
            raise ValueError(f"neutralisation mode {self.mode!r}: expected one of {', '.join(MODES)}")
        if self.frontal not in SHAPES:
            raise ValueError(f"frontalisation shape {self.frontal!r}: expected one of {', '.join(SHAPES)}")

    @classmethod
    def from_config(cls, cfg: dict) -> "InputRule":
        d = (cfg or {}).get("data", {}) or {}
        neutralize = bool(d.get("neutralize_shape", False))
        shape = None
        if neutralize and d.get("neutral_shape_map"):
            from nfgan.data.neutral_shape import NeutralShape

            shape = NeutralShape.load(d["neutral_shape_map"])
        frontal = str(d.get("frontalize_shape") or "template")
        frontal_map = None
        if frontal == "own" and d.get("frontal_shape_map"):
            from nfgan.data.frontal_shape import FrontalShape

            frontal_map = FrontalShape.load(d["frontal_shape_map"])
        return cls(bool(d.get("flip_left_poses", False)), bool(d.get("frontalize_inputs", False)),
                   str(d.get("frontalize_fill") or "mirror"), neutralize, shape, str(d.get("neutralize_mode") or "warp"),
                   float(d.get("neutralize_threshold") or 0.0), frontal, frontal_map)

    def with_step3(self, mode: str, threshold: float = 0.0, shape_map=None) -> "InputRule":
        """This rule with step 3 (geometric neutralisation of frontal inputs) switched on at inference, in ``mode``
        with ``threshold``, with the map in the file ``shape_map`` (None: the shipped one; ``"identity"``:
        ``NeutralShape.identity()``, re-framing only, from no data). Raises ``ValueError`` (a bad mode, threshold or
        map file)."""
        shape = None
        if shape_map is not None:
            from nfgan.data.neutral_shape import NeutralShape

            shape = NeutralShape.identity() if str(shape_map) == "identity" else NeutralShape.load(shape_map)
        return dataclasses.replace(self, neutralize=True, shape=shape, mode=mode, threshold=float(threshold))

    def with_own_shape(self, shape_map=None) -> "InputRule":
        """This rule with turned faces warped onto their own predicted frontal landmarks at inference
        (``nfgan.data.frontal_shape``), with the map in the file ``shape_map`` (None: the shipped one). Raises
        ``ValueError`` (a rule that does not frontalise, or a bad map file)."""
        if not self.frontalize:
            raise ValueError("own-shape frontalisation needs a model that frontalises its turned inputs "
                             "(data.frontalize_inputs)")
        from nfgan.data.frontal_shape import FrontalShape

        frontal_map = None if shape_map is None else FrontalShape.load(shape_map)
        return dataclasses.replace(self, frontal="own", frontal_map=frontal_map)

    def frontal_shape(self):
        """The map step 2 warps onto with ``own`` (None with ``template``)."""
        if self.frontal != "own":
            return None
        from nfgan.data.frontal_shape import shipped

        return self.frontal_map if self.frontal_map is not None else shipped()

    @property
    def channels(self) -> int:
        """How many channels the generator reads: 2 with the fill ``both`` (and frontalisation on), else 1."""
        return input_channels(self.frontalize, self.fill)

    def neutral_shape(self):
        """The map step 3 uses."""
        from nfgan.data.neutral_shape import shipped

        return self.shape if self.shape is not None else shipped()

    def map_subjects(self) -> set[str] | None:
        """The people the maps this rule uses were fit on (:func:`fit_subjects`; the neutral-shape map with step 3,
        the frontal-shape map with ``own``): empty for a rule without maps, ``None`` where a map does not say.
        A model file records them with the people its weights learned from, for the FER leak guard."""
        maps = [self.neutral_shape()] if self.neutralize else []
        if self.frontal == "own":
            maps.append(self.frontal_shape())
        people: set[str] = set()
        for shape in maps:
            found = fit_subjects(shape)
            if found is None:
                return None
            people |= found
        return people

    def as_dict(self) -> dict:
        """What a model file or ONNX graph records of the rule (read back by :meth:`from_record`)."""
        out = {"flip_left_poses": self.flip_left_poses, "frontalize": self.frontalize, "fill": self.fill,
               "neutralize": self.neutralize}
        if self.neutralize:   # the map itself, so that the record does not depend on a file
            out["neutral_shape"] = self.neutral_shape().as_record()
            out["neutralize_mode"] = self.mode
            if self.threshold:    # absent = 0, as in records from before the threshold existed
                out["neutralize_threshold"] = self.threshold
        if self.frontal == "own":   # absent = template, as in records from before the option existed
            out["frontalize_shape"] = "own"
            out["frontal_shape"] = self.frontal_shape().as_record()
        return out

    @classmethod
    def from_record(cls, rule: dict) -> "InputRule":
        """The rule :meth:`as_dict` wrote (a record from before ``fill`` / ``neutralize`` / ``neutralize_mode`` /
        ``neutralize_threshold`` / ``frontalize_shape`` existed: ``mirror`` / off / ``warp`` / 0 / ``template``)."""
        shape = frontal_map = None
        if rule.get("neutralize") and rule.get("neutral_shape"):
            from nfgan.data.neutral_shape import NeutralShape

            shape = NeutralShape.from_record(rule["neutral_shape"])
        frontal = str(rule.get("frontalize_shape") or "template")
        if frontal == "own" and rule.get("frontal_shape"):
            from nfgan.data.frontal_shape import FrontalShape

            frontal_map = FrontalShape.from_record(rule["frontal_shape"])
        return cls(bool(rule.get("flip_left_poses", False)), bool(rule.get("frontalize", False)),
                   str(rule.get("fill") or "mirror"), bool(rule.get("neutralize", False)), shape,
                   str(rule.get("neutralize_mode") or "warp"), float(rule.get("neutralize_threshold") or 0.0),
                   frontal, frontal_map)

    def mirror_mask(self, poses: Sequence[str] | None, flipped: Sequence | None = None) -> np.ndarray:
        """Which faces are mirrored before the generator (none without poses or without ``flip_left_poses``)."""
        if not self.flip_left_poses or poses is None:
            return np.zeros(0 if poses is None else len(poses), bool)
        return occluded_left(poses, flipped)

    def reshape(self, faces_u8: np.ndarray, poses: Sequence[str] | None, landmarks: np.ndarray | None,
                mirrored: Sequence[bool], who: str = "this model", strict: bool = False) -> np.ndarray:
        """``faces_u8`` (already mirrored where ``mirrored``) with the rule's warps: every turned face frontalised
        (step 2) and every other face neutralised (step 3), each with its 68 landmarks (``N x 68 x 2``,
        coordinates of the unmirrored crop; ``poses`` None: every face of unknown pose). A face without finite
        landmarks is an error with ``strict``, else it goes to the generator unwarped with a warning. Returns
        ``N x S x S``, or ``N x 2 x S x S`` for a two-channel rule (:attr:`channels`)."""
        x = np.array(faces_u8, dtype=np.uint8, copy=True)
        two = self.channels == 2
        poses = ["unknown"] * len(x) if poses is None else list(poses)
        turned = [i for i, p in enumerate(poses) if is_turned(p)] if self.frontalize else []
        other = [i for i, p in enumerate(poses) if not is_turned(p)] if self.neutralize else []
        if landmarks is None and other and self.threshold > 0 and not strict:
            # the gate leaves most faces as they are; without landmarks it cannot tell which to move
            warnings.warn(f"{who}: {len(other)} frontal face(s) without landmarks go to the generator as they are "
                          "(its input rule re-frames a face whose framing is off, which needs the 68 landmarks: "
                          "pass them, or normalise photos, which are aligned with them)")
            other = []
        if not turned and not other:
            return np.stack([x, x], axis=1) if two else x
        if landmarks is None:
            raise MissingLandmarksError(f"{who}: {self._needs(turned, other)} and needs their 68 landmarks "
                                        "(nfgan prepare's landmarks.npy, or AlignedFace.landmarks68)")
        lm = np.asarray(landmarks, dtype=np.float64)
        for group, what, done in ((turned, "turned input(s)", "frontalised"), (other, "input(s)", "neutralised")):
            missing = [i for i in group if not np.isfinite(lm[i]).all()]
            if not missing:
                continue
            if strict:
                raise MissingLandmarksError(f"{who}: {what} without landmarks cannot be {done}: rows {missing[:5]}")
            warnings.warn(f"{len(missing)} {what.replace('input(s)', 'face(s)')} without landmarks (rows "
                          f"{missing[:5]}) go to the generator un{done}")
            group[:] = [i for i in group if i not in set(missing)]
        mirrored = np.asarray(mirrored, bool)
        plain = x[turned] if two else None
        destination = self.frontal_shape()
        if turned:
            x[turned] = frontalize_batch(x[turned], lm[turned], [poses[i] for i in turned], mirrored=mirrored[turned],
                                         fill="mirror" if two else self.fill, shape=destination)
        if other:
            from nfgan.data.neutral_shape import neutralize_batch

            size = x.shape[-1]
            own = np.stack([mirror_landmarks(lm[i], size) if mirrored[i] else lm[i] for i in other])
            x[other] = neutralize_batch(x[other], own, self.neutral_shape(), self.mode, self.threshold)
        if not two:
            return x
        second = x.copy()
        if turned:
            second[turned] = frontalize_batch(plain, lm[turned], [poses[i] for i in turned], mirrored=mirrored[turned],
                                              fill="none", shape=destination)
        return np.stack([x, second], axis=1)

    @staticmethod
    def _needs(turned, other) -> str:
        return " and ".join((["frontalises turned inputs"] if turned else [])
                            + (["neutralises frontal inputs"] if other else []))

    def apply(self, faces_u8: np.ndarray, poses: Sequence[str] | None = None, flipped: Sequence | None = None,
              landmarks: np.ndarray | None = None, who: str = "this model") -> np.ndarray:
        """uint8 ``N x S x S`` faces as the generator reads them (mirrored, then frontalised or neutralised):
        ``N x S x S``, or ``N x 2 x S x S`` for a two-channel rule (:attr:`channels`)."""
        faces_u8 = np.asarray(faces_u8)
        flip = self.mirror_mask(poses, flipped) if poses is not None else np.zeros(len(faces_u8), bool)
        x = np.where(flip[:, None, None], faces_u8[:, :, ::-1], faces_u8).astype(np.uint8)
        if poses is None and not self.neutralize:
            return np.stack([x, x], axis=1) if self.channels == 2 else x
        return self.reshape(x, poses, landmarks, flip, who)
