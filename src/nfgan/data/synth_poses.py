"""Turned faces from frontal ones with the Surrey Face Model: the pose half of ``nfgan synth-expressions --yaw``.

The only turned faces nfgan may train on are London's 3/4 views of its 102 people; CK+, JAFFE, Yale and canada are
frontal. ``nfgan synth-expressions SRC OUT --yaw LO HI`` turns each synthetic face (expressive, or neutral with
``--expressions neutral,...``) by a yaw drawn uniformly in ``[LO, HI]`` degrees, to a side drawn at random, so any
frontal set also teaches the turned-input case. This module renders one such face; the draws, the folder and the
expression are :mod:`nfgan.data.synth_expressions`'.

For one frontal face with its 68 landmarks, the SFM fit (camera ``C``, a scaled orthographic 3x4 matrix, and the
fitted vertices ``V``), an expression deformation ``D`` (``V x 3``, zero for a neutral face) and a yaw ``theta``:

1. **Turn the mesh.** ``V + D`` is rotated by ``theta`` about the camera's vertical image axis (expressed in model
   coordinates) and projected by ``C``; the projection is shifted so that the eye centres' midpoint (the mean
   of the eye landmarks' vertices) stays where the frontal one was - nfgan's crops keep the eyes near the same
   place for every pose. The *real* landmarks move by the same projected motion (their vertices'), so the fit's
   error does not leak into the new landmarks.
2. **Where each vertex is in the photo.** Its fitted projection, moved by a Gaussian-weighted average of the fit's
   misses at the inner landmarks (:func:`nfgan.data.frontalize3d.landmark_snap`), so eyes, nose and mouth are
   read where the landmarks put them. The same correction moves the turned positions.
3. **Render with a z-buffer.** Every triangle is sampled on a barycentric grid at its turned positions; each
   output pixel takes the triangle of its front-most sample (depth along the viewing axis) and reads the photo
   (bilinear) at the pixel's barycentric position in that triangle among the vertices' photo positions. The
   nose thus hides the far cheek, and the near side shows the surface the frontal photo saw at a slant
   (stretched, as a photo of a 3/4 view taken from that frontal one would be).
4. **Outside the face** (hair, ears, neck, background) the photo moves with the head: row by row, the mesh's
   span in the photo is stretched onto its turned span and what lies beside it follows
   (:func:`follow_background`), so the far cheek the nose now hides does not show again beyond the turned
   silhouette. The rendered face is blended over it across :data:`FEATHER` px at the mesh's edge. Where the
   expression opens the mouth, the new mouth interior is filled dark as for a face that is not turned.

No lighting change and no hair or ear geometry: the synthetic views are easier than real ones, and are meant as
more *people* seen turned, not as a substitute for real turned photos.
"""
from __future__ import annotations

import numpy as np

from nfgan.data.frontalize import bilinear_sample
from nfgan.data.frontalize3d import camera_axes, feather

#: px (at 64 px, scaled with the crop) over which the rendered face blends into the 2D-warped surroundings
FEATHER = 1.5
#: the eye landmarks whose vertices' midpoint stays in place
EYES = tuple(range(36, 48))
NOSE_TIP = 30


def axis_rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    """3x3 rotation by ``degrees`` about ``axis`` (Rodrigues)."""
    k = np.asarray(axis, dtype=np.float64)
    k = k / np.linalg.norm(k)
    t = np.radians(float(degrees))
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) * np.cos(t) + np.sin(t) * kx + (1 - np.cos(t)) * np.outer(k, k)


def turn(camera: np.ndarray, vertices: np.ndarray, eye_vertices: np.ndarray, nose_vertex: int,
         yaw_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Step 1: ``(turned image positions V x 2, depth V)`` of ``vertices`` turned by ``yaw_deg`` (> 0: the nose
    moves to the image's right), the eye midpoint kept in place; depth grows towards the camera."""
    cam = np.asarray(camera, dtype=np.float64)
    v = np.asarray(vertices, dtype=np.float64)
    up, toward = camera_axes(cam, v, nose_vertex)
    pivot = v.mean(0)

    def project(r):
        w = (v - pivot) @ r.T + pivot
        return w @ cam[:2, :3].T + cam[:2, 3], w @ toward

    front = v @ cam[:2, :3].T + cam[:2, 3]
    xy, depth = project(axis_rotation(up, yaw_deg))
    if np.sign(xy[nose_vertex, 0] - front[nose_vertex, 0]) != np.sign(yaw_deg):
        xy, depth = project(axis_rotation(up, -yaw_deg))        # the camera's axes turn the other way
    xy = xy + (front[eye_vertices].mean(0) - xy[eye_vertices].mean(0))
    return xy, depth


def raster(triangles: np.ndarray, xy: np.ndarray, depth: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Step 3's z-buffer: ``(triangle index per pixel S*S (-1: none), barycentric coordinates S*S x 3)`` of the
    front-most triangle (largest depth at the pixel centre) whose area holds each pixel centre. Every triangle
    tests the pixel centres of its bounding box (a window as wide as the widest box), so the cost is
    triangles x window squared: small for the SFM's sub-pixel triangles at nfgan's crop sizes."""
    tri = np.asarray(triangles, dtype=np.int64)
    owner = np.full(size * size, -1, dtype=np.int64)
    bary = np.zeros((size * size, 3))
    if not len(tri):
        return owner, bary
    c = np.asarray(xy, dtype=np.float64)[tri]                       # T x 3 x 2
    lo = np.ceil(c.min(1) - 1e-9).astype(np.int64)                  # first pixel centre in the box
    hi = np.floor(c.max(1) + 1e-9).astype(np.int64)
    w = int(max(1, (hi - lo).max() + 1))
    off = np.stack(np.meshgrid(np.arange(w), np.arange(w), indexing="xy"), -1).reshape(-1, 2)
    p = lo[:, None, :] + off[None]                                  # T x w*w x 2 candidate centres
    e1, e2 = c[:, 0] - c[:, 2], c[:, 1] - c[:, 2]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    ok_t = np.abs(det) > 1e-12                                      # degenerate (edge-on) triangles cover nothing
    det = np.where(ok_t, det, 1.0)[:, None]
    d = p - c[:, None, 2]
    l1 = (d[..., 0] * e2[:, None, 1] - d[..., 1] * e2[:, None, 0]) / det
    l2 = (e1[:, None, 0] * d[..., 1] - e1[:, None, 1] * d[..., 0]) / det
    l3 = 1.0 - l1 - l2
    eps = 1e-9
    inside = ((l1 >= -eps) & (l2 >= -eps) & (l3 >= -eps) & ok_t[:, None]
              & (p >= 0).all(-1) & (p < size).all(-1) & (p <= hi[:, None]).all(-1))
    t_idx, k_idx = np.nonzero(inside)
    lam = np.stack([l1[t_idx, k_idx], l2[t_idx, k_idx], l3[t_idx, k_idx]], 1)
    z = np.einsum("nk,nk->n", lam, np.asarray(depth, dtype=np.float64)[tri[t_idx]])
    pix = p[t_idx, k_idx, 1] * size + p[t_idx, k_idx, 0]
    order = np.lexsort((-z, pix))                                   # per pixel, the nearest surface first
    first = order[np.unique(pix[order], return_index=True)[1]]
    owner[pix[first]] = t_idx[first]
    bary[pix[first]] = lam[first]
    return owner, bary


def _spans(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a ``S x S`` mask, its first and last covered column, interpolated (and held at the ends) over
    the rows it does not cover."""
    rows = np.flatnonzero(mask.any(1))
    first = np.argmax(mask[rows], 1).astype(np.float64)
    last = (mask.shape[1] - 1 - np.argmax(mask[rows, ::-1], 1)).astype(np.float64)
    ys = np.arange(mask.shape[0])
    return np.interp(ys, rows, first), np.interp(ys, rows, last)


def follow_background(face: np.ndarray, front_mask: np.ndarray, turned_mask: np.ndarray) -> np.ndarray:
    """Step 4: float ``S x S``: ``face`` stretched row by row so that the face mesh's span in each row (columns
    ``a0..b0`` in ``front_mask``) lands on its turned span (``a1..b1`` in ``turned_mask``), and what lay beside
    it (hair, ears, background) moves with it: ``[0, a1] <- [0, a0]``, ``[b1, S-1] <- [b0, S-1]``, linear in
    between. Rows above and below the mesh take the nearest covered row's mapping (the head moves as a whole)."""
    face = np.asarray(face, dtype=np.float64)
    size = face.shape[-1]
    if not front_mask.any() or not turned_mask.any():
        return face.copy()
    a0, b0 = _spans(front_mask)
    a1, b1 = _spans(turned_mask)
    x = np.arange(size, dtype=np.float64)[None, :]
    a0, b0, a1, b1 = (v[:, None] for v in (a0, b0, a1, b1))
    last = size - 1.0
    left = x * a0 / np.maximum(a1, 1e-6)
    mid = a0 + (x - a1) * (b0 - a0) / np.maximum(b1 - a1, 1e-6)
    right = b0 + (x - b1) * (last - b0) / np.maximum(last - b1, 1e-6)
    src_x = np.where(x < a1, left, np.where(x > b1, right, mid))
    ys = np.broadcast_to(np.arange(size, dtype=np.float64)[:, None], (size, size))
    return bilinear_sample(face, np.stack([src_x.ravel(), ys.ravel()], 1)).reshape(size, size)


def render_turned(face: np.ndarray, triangles: np.ndarray, photo_xy: np.ndarray, turned_xy: np.ndarray,
                  depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Steps 3-4: ``(float S x S, alpha S x S)``: the mesh rendered at ``turned_xy`` reading ``face`` at
    ``photo_xy``, over the surroundings moved with it (:func:`follow_background`); ``alpha`` is the rendered
    face's weight (1 inside the mesh, 0 outside, feathered at its edge)."""
    from scipy.ndimage import binary_closing, binary_fill_holes

    face = np.asarray(face, dtype=np.float64)
    size = face.shape[-1]
    tri = np.asarray(triangles, dtype=np.int64)
    owner, bary = raster(tri, turned_xy, depth, size)
    have = owner >= 0
    value = np.zeros(size * size)
    value[have] = bilinear_sample(face, np.einsum("pk,pkd->pd", bary[have], photo_xy[tri[owner[have]]]))
    turned_mask = binary_fill_holes(binary_closing(have.reshape(size, size), iterations=1))
    front_mask = binary_fill_holes(binary_closing((raster(tri, photo_xy, np.zeros(len(photo_xy)), size)[0] >= 0)
                                                  .reshape(size, size), iterations=1))
    around = follow_background(face, front_mask, turned_mask)
    alpha = feather(turned_mask.astype(np.float64), FEATHER * size / 64) * have.reshape(size, size)
    return value.reshape(size, size) * alpha + around * (1 - alpha), alpha
