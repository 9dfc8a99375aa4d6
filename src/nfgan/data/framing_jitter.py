"""Framing jitter: a generator input moved, turned and scaled a little, as another aligner (or another expression)
would frame the same face (config ``data.framing_jitter``; training only).

Alignment fits its template to 49 landmarks that include the mouth and brows, so the same person's face lands at
another scale in the crop when the expression changes: a surprised face is framed 8-16 % smaller than the neutral
one, an angry or disgusted one 3-7 % larger (``docs/experiments.md``, round 21), and a user's own aligner frames
faces in its own way. A U-Net copies its input's layout through the skips, so it carries a wrongly framed face
into the output. With ``p`` > 0 each training input is, with probability ``p``, warped by a random similarity about
the crop centre (scale in ``scale``, log-uniform; rotation up to ``rotate_deg`` either way; shift up to ``shift``
of the crop side on each axis; bilinear, edges replicated), while its target and L_id's reference stay as they
are: the network learns to put the face where the target has it. Inference never jitters.

:func:`reframe` applies one fixed re-framing to every face and moves its landmarks alike: ``nfgan evaluate
--degrade scale=1.1`` (:data:`REFRAMING_STEPS`) measures what another aligner's framing costs a model.
"""
from __future__ import annotations

import numpy as np

from nfgan.data.align import apply_transform
from nfgan.data.frontalize import similarity_warp

#: fixed re-framing steps of ``nfgan evaluate --degrade`` (:func:`reframe`): name -> (value that leaves a face as it
#: is, the test a value must pass, the values it allows in words)
REFRAMING_STEPS = {
    "scale": (1.0, lambda v: 0.5 <= v <= 2.0,
              "a factor > 0 about the crop centre, 0.5..2 (1.1: the face 10 % larger in the crop)"),
    "rotate": (0.0, lambda v: -45 <= v <= 45, "degrees about the crop centre, -45..45 (positive: clockwise on screen)"),
    "shift_x": (0.0, lambda v: -0.5 <= v <= 0.5, "a share of the crop side, -0.5..0.5 (positive: the face moves right)"),
    "shift_y": (0.0, lambda v: -0.5 <= v <= 0.5, "a share of the crop side, -0.5..0.5 (positive: the face moves down)"),
}


def framing_params(n: int, rng: np.random.Generator, cfg: dict) -> dict[str, np.ndarray]:
    """Per-face random settings for :func:`framing_augment`, drawn for a whole batch at once (so a batch split
    over processes gives each face its own settings): ``scale``, ``angle`` (degrees), ``dx``/``dy`` (shares of
    the crop side). A face left as it is has scale 1 and everything else 0."""
    on = rng.random(n) < float(cfg["p"])
    lo, hi = cfg["scale"]
    scale = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
    angle = rng.uniform(-1.0, 1.0, n) * float(cfg["rotate_deg"])
    shift = rng.uniform(-1.0, 1.0, (n, 2)) * float(cfg["shift"])
    return {"scale": np.where(on, scale, 1.0), "angle": np.where(on, angle, 0.0),
            "dx": np.where(on, shift[:, 0], 0.0), "dy": np.where(on, shift[:, 1], 0.0)}


def framing_matrix(size: int, scale: float, angle_deg: float, dx: float, dy: float) -> np.ndarray:
    """The 2 x 3 similarity (crop -> jittered crop): scaled by ``scale`` and turned by ``angle_deg`` about the crop
    centre, then moved by (``dx``, ``dy``) crop sides."""
    c = 0.5 * (size - 1)
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    t = np.array([c, c]) - rot @ np.array([c, c]) + np.array([dx, dy]) * size
    return np.concatenate([rot, t[:, None]], axis=1)


def framing_augment(faces: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    """uint8 ``N x S x S`` faces, each warped by its :func:`framing_matrix` (a face whose settings are the
    identity is returned unchanged). Deterministic given ``params``."""
    faces = np.asarray(faces, dtype=np.uint8)
    out = faces.copy()
    size = faces.shape[-1]
    for i in range(len(faces)):
        s, a, dx, dy = (float(params[k][i]) for k in ("scale", "angle", "dx", "dy"))
        if s != 1.0 or a != 0.0 or dx != 0.0 or dy != 0.0:
            out[i] = similarity_warp(faces[i], framing_matrix(size, s, a, dx, dy))
    return out


def reframe(faces: np.ndarray, landmarks: np.ndarray | None, steps: dict[str, float]
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 ``N x S x S`` faces all warped by the one similarity the re-framing ``steps`` name (keys of
    :data:`REFRAMING_STEPS`; other keys are ignored; scaled and turned about the crop centre, then moved), and their
    ``N x K x 2`` landmarks (``None`` stays ``None``; NaN stays NaN) moved by the same map, as an aligner that frames
    faces that way would give them."""
    faces = np.asarray(faces, dtype=np.uint8)
    s, a, dx, dy = (float(steps.get(k, REFRAMING_STEPS[k][0])) for k in ("scale", "rotate", "shift_x", "shift_y"))
    out = framing_augment(faces, {k: np.full(len(faces), v) for k, v in
                                  (("scale", s), ("angle", a), ("dx", dx), ("dy", dy))})
    if landmarks is None:
        return out, None
    lm = np.asarray(landmarks, dtype=np.float64)
    m = framing_matrix(faces.shape[-1], s, a, dx, dy)     # the identity when no step moves the face
    return out, apply_transform(m, lm.reshape(-1, 2)).reshape(lm.shape)
