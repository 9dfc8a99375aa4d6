"""3D-model frontalisation: the classic, network-free way to a frontal face, with the Surrey Face Model.

The baseline every learned normaliser must beat (issue #23, item 3): Hassner et al. (CVPR 2015) frontalise a face
by fitting a 3D face to its landmarks, reading the photo's pixels through that 3D face, and rendering it from the
front, with the half the camera could not see filled from the half it could ("soft symmetry"). This module does
the same with the Surrey Face Model (SFM, 3448 vertices, read from a path by eos-py: ``pip install
'nfgan[synth]'``; the model itself is non-commercial and never ships with nfgan) and one step Hassner's single
reference face cannot do: the SFM's six expression blendshapes are fitted too and **left out of the rendered
geometry**, so the output has the person's fitted neutral shape. On 64 px crops eos fits them weakly (a London
smile gets happiness ~0.2; the shape coefficients absorb the rest), so the geometry moves by under a pixel, and
the texture is the photo's anyway: teeth, wrinkles and shadows of the expression stay.

For one aligned ``S x S`` gray face with its 68 landmarks (crop pixels, iBUG numbering, as ``nfgan prepare``
writes them):

1. **Fit.** eos fits the SFM's shape, its expression blendshapes and a scaled orthographic pose to the landmarks
   (:meth:`nfgan.data.sfm.SFM.fit_full`). A fit whose landmark vertices land on average more than
   :data:`MAX_FIT_ERROR` of the face's size from the landmarks is refused (:class:`Frontalize3DError`).
2. **Where each vertex is in the photo.** The fitted mesh *with* its expression is projected by the fitted
   camera. A vertex is visible when no part of the mesh lies in front of it: every triangle is sampled densely,
   the samples' depths go into a z-buffer at twice the crop resolution, and a vertex within
   :data:`DEPTH_TOLERANCE` of the face's depth range of its bin's nearest sample counts as visible. Its
   visibility then falls linearly to 0 as its surface turns edge-on to the camera (:data:`GRAZING`): such a
   surface is read from a sliver of the photo, and there the fitted silhouette strays onto the background.
   The regularised fit misses a turned face's landmarks by a few px, so the photo positions are then moved by a
   Gaussian-weighted average (:data:`SNAP_SIGMA`) of the misses at the inner landmarks, fading out away from
   them (:meth:`Frontalizer3D.snap`).
3. **Where each vertex goes in the output.** The fitted *neutral* mesh (shape only) is projected from the front
   and placed by the least-squares scale and shift that brings its inner landmark vertices (brows, nose, eyes,
   mouth) onto nfgan's frontal layout :data:`nfgan.data.frontalize.FRONTAL68`, so outputs share the framing of
   the real frontal faces nfgan compares them with.
4. **Render.** The frontal vertex positions are Delaunay-triangulated; each output pixel inside the face reads
   the photo (bilinear) at the same barycentric position among the vertices' photo positions, and gets the same
   barycentric mix of the vertices' visibility ``w``.
5. **Soft symmetry.** A pixel is replaced, in proportion to ``1 - w``, by its mirror pixel (about the frontal
   midline) where that one is more visible. When the fitted yaw exceeds :data:`TURNED_YAW` the whole far half
   (the one with less visibility) is the mirror of the near half, blended over a few px at the midline.
6. **Outside the face** (hair, ears, background) the output is nfgan's 2D landmark frontalisation of the input
   for a turned face (:mod:`nfgan.data.frontalize`) and the input itself for a frontal one, blended into the
   rendered face over :data:`FEATHER` px.

:class:`Frontalizer3D` does one face; :func:`frontalize3d_batch` a batch with per-face failures reported, not
raised. ``nfgan evaluate NAME=frontalize3d`` scores it as a model (``docs/evaluation.md``).
"""
from __future__ import annotations

import functools
import os
from typing import Sequence

import numpy as np

from nfgan.data.frontalize import (FRONTAL68, bilinear_sample, delaunay_barycentric, frontalizer, is_turned,
                                   mirror_weights)

#: a vertex is visible when its depth is within this fraction of the mesh's depth range of the nearest surface
DEPTH_TOLERANCE = 0.04
#: a vertex whose normal makes a cosine below GRAZING[0] with the viewing axis has visibility 0, above
#: GRAZING[1] full visibility (linear between)
GRAZING = (0.25, 0.5)
#: samples per triangle edge for the z-buffer (barycentric grid; (n+1)(n+2)/2 samples per triangle)
ZBUFFER_SAMPLES = 4
#: px (at 64 px, scaled with the crop) over which the rendered face blends into its surroundings
FEATHER = 1.5
#: inner landmarks (brows, nose, eyes, mouth) that place the frontal mesh on :data:`FRONTAL68`
PLACE_POINTS = tuple(range(17, 68))
NOSE_TIP = 30
#: step 2b: Gaussian width (px at 64 px) of the landmark-residual interpolation, and the weight floor that makes
#: the correction fade out away from the landmarks
#: (chosen on London training people's 3/4 faces: SSIM to the real frontal face 0.295 / 0.328 / 0.338 / 0.333
#: at 3 / 5 / 8 / 12 px)
SNAP_SIGMA = 8.0
SNAP_FLOOR = 0.3
#: beyond this fitted yaw (degrees) the whole far half of the output is the mirror of the near half
TURNED_YAW = 15.0
#: a fit whose mapped landmarks are on average farther than this fraction of the face's eye span plus nose
#: height (a size that shrinks little when the head turns, unlike the inter-ocular distance) is refused. Seen
#: on London, CK+, JAFFE and Yale: frontal fits 0.02-0.04, 3/4 fits 0.07-0.08 (median), 0.11 at most
MAX_FIT_ERROR = 0.12


class Frontalize3DError(ValueError):
    """A face the 3D frontalisation cannot do (bad landmarks, a failed fit); the message says why."""


class Frontalizer3D:
    """3D frontalisation of ``size x size`` aligned faces (module docstring). ``sfm``: a loaded
    :class:`nfgan.data.sfm.SFM` or the folder to load it from (``None``: ``$NFGAN_SFM``, else
    ``../shared/models/sfm``)."""

    def __init__(self, sfm=None, size: int = 64, neutralise: bool = True):
        from nfgan.data.sfm import SFM

        self.sfm = sfm if isinstance(sfm, SFM) else SFM.load(sfm)
        self.size = int(size)
        self.neutralise = bool(neutralise)
        self.triangles = self.sfm.triangles
        # barycentric grid of z-buffer samples per triangle
        n = ZBUFFER_SAMPLES
        ij = [(i, j) for i in range(n + 1) for j in range(n + 1 - i)]
        self._zbary = np.array([[i / n, j / n, 1 - (i + j) / n] for i, j in ij])
        yy, xx = np.mgrid[0:self.size, 0:self.size]
        self._pix = np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float64)
        self._mapped = np.array(sorted(self.sfm.vertex_of), dtype=np.int64)
        self._mapped_vertices = np.array([self.sfm.vertex_of[i] for i in self._mapped.tolist()], dtype=np.int64)
        self._place = np.array([i for i in PLACE_POINTS if i in self.sfm.vertex_of], dtype=np.int64)
        self._place_vertices = np.array([self.sfm.vertex_of[i] for i in self._place.tolist()], dtype=np.int64)
        self._template = FRONTAL68[self._place] * (self.size - 1)

    # -- steps ---------------------------------------------------------------------------------------------
    def fit(self, landmarks: np.ndarray):
        """Step 1: ``(camera 3x4, mesh vertices with expression V x 3, neutral vertices V x 3)``."""
        lm = np.asarray(landmarks, dtype=np.float64)
        if lm.shape != (68, 2) or not np.isfinite(lm).all():
            raise Frontalize3DError("3D frontalisation needs 68 finite landmarks")
        try:
            camera, expressive, neutral = self.sfm.fit_full(lm, self.size)
        except (RuntimeError, ValueError) as e:
            raise Frontalize3DError(f"3D fit failed: {e}") from None
        proj = expressive[self._mapped_vertices] @ camera[:2, :3].T + camera[:2, 3]
        err = float(np.linalg.norm(proj - lm[self._mapped], axis=1).mean())
        scale = float(np.linalg.norm(lm[36:48].max(0) - lm[36:48].min(0)) + np.ptp(lm[27:36, 1]))
        if not np.isfinite(err) or not np.isfinite(camera).all() or err > MAX_FIT_ERROR * scale:
            raise Frontalize3DError(f"3D fit refused: its landmarks are on average {err:.2f} px from the face's "
                                    f"(limit {MAX_FIT_ERROR} x the eye-span-plus-nose-height {scale:.1f} px)")
        return camera, expressive, neutral

    def visibility(self, camera: np.ndarray, vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Step 2: the vertices' photo positions ``V x 2`` and visibility ``V`` (1.0 visible, 0.0 hidden)."""
        proj = vertices @ camera[:2, :3].T + camera[:2, 3]
        nose = self.sfm.vertex_of.get(NOSE_TIP, 0)
        _, toward = camera_axes(camera, vertices, nose)
        depth = vertices @ toward                                     # larger = nearer the camera
        tri = self.triangles
        sp = np.einsum("sk,tkd->tsd", self._zbary, proj[tri]).reshape(-1, 2)
        sd = np.einsum("sk,tk->ts", self._zbary, depth[tri]).ravel()
        res = 2 * self.size
        scale = res / self.size

        def bins(p):
            b = np.clip(np.floor(p * scale).astype(np.int64), 0, res - 1)
            return b[:, 1] * res + b[:, 0]

        zbuf = np.full(res * res, -np.inf)
        np.maximum.at(zbuf, bins(sp), sd)
        tol = DEPTH_TOLERANCE * float(depth.max() - depth.min())
        visible = (depth >= zbuf[bins(proj)] - tol).astype(np.float64)
        # foreshortening: a surface seen edge-on is read from a sliver of the photo (and the fitted silhouette
        # strays onto the background there), so its weight falls to 0 as it turns away from the camera
        face_n = np.cross(vertices[tri[:, 1]] - vertices[tri[:, 0]], vertices[tri[:, 2]] - vertices[tri[:, 0]])
        vertex_n = np.zeros_like(vertices)
        for k in range(3):
            np.add.at(vertex_n, tri[:, k], face_n)
        vertex_n /= np.maximum(np.linalg.norm(vertex_n, axis=1, keepdims=True), 1e-12)
        facing = vertex_n @ toward
        if facing[nose] < 0:                                          # triangle winding points inwards
            facing = -facing
        soft = np.clip((facing - GRAZING[0]) / (GRAZING[1] - GRAZING[0]), 0.0, 1.0)
        return proj, visible * soft

    def snap(self, photo_xy: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Step 2b: the photo positions moved by a Gaussian-weighted average of the fit's residuals at the inner
        landmarks (fading out away from them), so that the eyes, nose and mouth are read where the landmarks put
        them, not where the regularised fit projects them (a few px off on a turned face)."""
        at = photo_xy[self._place_vertices]
        residual = np.asarray(landmarks, dtype=np.float64)[self._place] - at
        return photo_xy + landmark_snap(photo_xy, at, residual, self.size)

    def place(self, neutral: np.ndarray) -> np.ndarray:
        """Step 3: the neutral vertices' output positions ``V x 2`` (frontal view, on :data:`FRONTAL68`)."""
        front = np.stack([neutral[:, 0], -neutral[:, 1]], 1)          # model y is up, image y is down
        src = front[self._place_vertices]
        dst = self._template
        sc, dc = src.mean(0), dst.mean(0)
        s = float(((src - sc) * (dst - dc)).sum() / max(((src - sc) ** 2).sum(), 1e-12))
        return (front - sc) * s + dc

    def render(self, face: np.ndarray, photo_xy: np.ndarray, visible: np.ndarray, out_xy: np.ndarray,
               yaw_deg: float | None = None):
        """Steps 4-5: ``(face values S x S, face mask S x S)``; pixels outside the mesh are 0 with mask 0."""
        size = self.size
        corners, bary, inside = delaunay_barycentric(out_xy, self._pix)
        value = np.zeros(size * size)
        weight = np.zeros(size * size)
        value[inside] = bilinear_sample(face, np.einsum("pk,pkd->pd", bary, photo_xy[corners]))
        weight[inside] = np.einsum("pk,pk->p", bary, visible[corners])
        value, weight = value.reshape(size, size), weight.reshape(size, size)
        mask = inside.reshape(size, size).astype(np.float64)
        # soft symmetry: the mirror pixel about the frontal midline, where it is more visible
        m_value, m_weight, m_mask = value[:, ::-1], weight[:, ::-1], mask[:, ::-1]
        take = np.clip((1.0 - weight) * m_weight * m_mask, 0.0, 1.0)
        if yaw_deg is not None and abs(yaw_deg) > TURNED_YAW:
            # a turned face: the whole far half is the mirror of the near one (its few "visible" pixels are
            # read from a sliver of the photo), blended over a few px at the midline
            near = "left" if weight[:, size // 2:].mean() < weight[:, :size // 2].mean() else "right"
            take = np.maximum(take, mirror_weights(size, near, 3.0 * size / 64)[None, :] * m_mask)
        value = value * (1 - take) + m_value * take
        return value, mask

    def __call__(self, face: np.ndarray, landmarks: np.ndarray, pose: str = "frontal") -> np.ndarray:
        """One aligned face -> uint8 ``size x size`` frontal face. ``pose``: the input's pose label, which
        chooses what fills the crop outside the face (step 6)."""
        face = np.asarray(face)
        if face.shape != (self.size, self.size):
            raise Frontalize3DError(f"expected a {self.size}x{self.size} aligned face, got {face.shape}")
        lm = np.asarray(landmarks, dtype=np.float64)
        camera, expressive, neutral = self.fit(lm)
        photo_xy, visible = self.visibility(camera, expressive)
        photo_xy = self.snap(photo_xy, lm)
        out_xy = self.place(neutral if self.neutralise else expressive)
        value, mask = self.render(face.astype(np.float64), photo_xy, visible, out_xy, yaw(camera))
        around = frontalizer(self.size)(face, lm).astype(np.float64) if is_turned(pose) else face.astype(np.float64)
        alpha = feather(mask, FEATHER * self.size / 64)
        out = value * alpha + around * (1 - alpha)
        return np.clip(np.round(out), 0, 255).astype(np.uint8)


def landmark_snap(points: np.ndarray, anchors: np.ndarray, residual: np.ndarray, size: int) -> np.ndarray:
    """``P x 2`` motion of ``points``: the Gaussian-weighted (:data:`SNAP_SIGMA`, scaled with the crop ``size``)
    average of ``residual`` (``K x 2``, landmark minus fitted position) at ``anchors`` (``K x 2``), fading out
    (:data:`SNAP_FLOOR`) away from them."""
    sigma = SNAP_SIGMA * size / 64
    d2 = ((points[:, None, :] - anchors[None]) ** 2).sum(-1)
    k = np.exp(-d2 / (2 * sigma ** 2))
    return k @ residual / (k.sum(1, keepdims=True) + SNAP_FLOOR)


def camera_axes(camera: np.ndarray, vertices: np.ndarray, nose_vertex: int) -> tuple[np.ndarray, np.ndarray]:
    """The camera's vertical image axis and its viewing axis (oriented from the face towards the camera: the
    nose tip ``nose_vertex`` lies in front of the mean of ``vertices``), unit vectors in model coordinates,
    from a fitted scaled orthographic 3x4 camera."""
    a = np.asarray(camera, dtype=np.float64)[:2, :3]
    up = a[1] / np.linalg.norm(a[1])
    toward = np.cross(a[0], a[1])
    toward /= np.linalg.norm(toward)
    if vertices[nose_vertex] @ toward < (vertices @ toward).mean():
        toward = -toward
    return up, toward


def yaw(camera: np.ndarray) -> float:
    """How far the head is turned, in degrees (0: frontal, unsigned), from a fitted 3x4 scaled orthographic
    camera: the angle between the model's forward axis (z) and the viewing axis, in the horizontal plane."""
    toward = np.cross(camera[0, :3], camera[1, :3])
    return float(np.degrees(np.arctan2(abs(toward[0]), abs(toward[2]))))


def feather(mask: np.ndarray, px: float) -> np.ndarray:
    """``mask`` (0/1) eroded by ``px`` and smoothed over ``px``: 1 well inside, 0 outside."""
    from scipy.ndimage import distance_transform_edt

    inside = distance_transform_edt(mask > 0.5)
    return np.clip((inside - 0.5) / max(px, 1e-6), 0.0, 1.0)


@functools.lru_cache(maxsize=2)
def frontalizer3d(sfm: str | None = None, size: int = 64) -> Frontalizer3D:
    """A cached :class:`Frontalizer3D` for an SFM folder (``None``: ``$NFGAN_SFM``, else ``../shared/models/sfm``)."""
    return Frontalizer3D(sfm, size)


def frontalize3d_batch(faces: np.ndarray, landmarks: np.ndarray, poses: Sequence[str] | None = None,
                       sfm: str | os.PathLike | None = None, progress: bool = False,
                       desc: str = "frontalize3d") -> tuple[np.ndarray, list[str | None]]:
    """uint8 ``N x S x S`` faces with ``N x 68 x 2`` landmarks -> ``(frontalised faces, errors)``: ``errors[i]`` is
    ``None`` or why face i could not be done (that face is then returned as it came)."""
    from tqdm import tqdm

    faces = np.asarray(faces)
    f = frontalizer3d(None if sfm is None else str(sfm), faces.shape[-1])
    out = np.array(faces, dtype=np.uint8, copy=True)
    errors: list[str | None] = [None] * len(faces)
    for i in tqdm(range(len(faces)), desc=desc, unit="face", disable=not progress, leave=False):
        try:
            out[i] = f(faces[i], landmarks[i], poses[i] if poses is not None else "frontal")
        except Frontalize3DError as e:
            errors[i] = str(e)
    return out, errors
