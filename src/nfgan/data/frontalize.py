"""Landmark frontalisation: a turned face warped onto the frontal landmark layout, its hidden half filled by symmetry.

An optional pre-processing step for a normaliser's inputs (config ``data.frontalize_inputs``, e.g.
``configs/pix2pix_lid_frontalized.yaml``): a U-Net normaliser copies its input's layout through the skip
connections, which is right for a frontal face and wrong for a turned one. Frontalising first hands it a
face that already has the frontal geometry, so the network only has to fix texture and expression.

For one aligned face with its 68 landmarks (crop pixel coordinates, iBUG numbering, as ``nfgan prepare``
writes them to ``landmarks.npy`` and ``nfgan.data.align`` returns them):

1. **Piecewise-affine warp.** The 51 inner points (brows, nose, eyes, mouth: the far jaw contour of a turned
   face is unreliable) plus 8 fixed points on the crop border are triangulated at their positions in
   :data:`FRONTAL68`; every output pixel is sampled (bilinear, edges replicated) from the same barycentric
   position of its triangle in the face's own landmarks. The triangulation and the barycentric
   coordinates depend only on the template, so they are computed once per crop size.
2. **Soft symmetry** (``fill="mirror"``, the default). The half of the face turned away from the camera is
   stretched and partly background after the warp; it is replaced by the mirror image of the visible half
   (blended over a few pixels at the midline). The visible half is the one with the longer nose-to-jaw distance
   in the input. ``fill="none"`` keeps the warped far half: stretched and blurred, but the person's own (a
   mirrored near half makes every face symmetric, and identity networks see the difference: on London's 70
   training people's 3/4 photos, faceres ranks the person's real frontal face first among the 70 for 71 % of
   the mirror-filled warps and 89 % of the plain warps, 99.6 % for the photos themselves). A normaliser
   fine-tuned on plain warps still did worse on turned photos than with the mirror fill (the nose smeared
   over the far cheek; ``docs/experiments.md``, round 5), so every shipped model uses ``mirror``.

With a map of ``nfgan.data.frontal_shape`` (``data.frontalize_shape: own``) step 1 warps onto a prediction of the
person's own frontal landmarks instead of the mean layout, keeping their proportions. Frontal inputs, and inputs
of unknown pose, are left as they are (:func:`frontalize_batch`). Hassner et al.
(CVPR 2015, "Effective face frontalization in unconstrained images") frontalise with a 3D model and soft
symmetry; this is a 2D version of the same idea built on our aligner's landmarks.
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from nfgan.data.align import apply_transform, invert_transform, mirror_landmarks

#: Frontal 68-point layout (x, y) as fractions of the crop's pixel span (index = value * (size - 1)): the mean
#: landmarks of the 70 London training subjects' frontal neutral faces (``out/london64``, ``nfgan prepare``)
#: averaged with their mirror image, so the layout is exactly symmetric about x = 0.5.
#: Re-derive with :func:`derive_frontal68`.
FRONTAL68 = np.array([
    [0.0869, 0.3428], [0.0968, 0.4516], [0.1133, 0.5568], [0.1321, 0.6619],
    [0.1625, 0.7614], [0.2184, 0.8452], [0.2984, 0.9104], [0.3928, 0.9570],
    [0.5000, 0.9715], [0.6072, 0.9570], [0.7016, 0.9104], [0.7816, 0.8452],
    [0.8375, 0.7614], [0.8679, 0.6619], [0.8867, 0.5568], [0.9032, 0.4516],
    [0.9131, 0.3428], [0.1574, 0.2480], [0.2066, 0.1925], [0.2810, 0.1709],
    [0.3579, 0.1785], [0.4317, 0.2051], [0.5683, 0.2051], [0.6421, 0.1785],
    [0.7190, 0.1709], [0.7934, 0.1925], [0.8426, 0.2480], [0.5000, 0.2923],
    [0.5000, 0.3562], [0.5000, 0.4193], [0.5000, 0.4850], [0.4265, 0.5487],
    [0.4621, 0.5596], [0.5000, 0.5684], [0.5379, 0.5596], [0.5735, 0.5487],
    [0.2477, 0.3193], [0.2914, 0.2877], [0.3462, 0.2876], [0.3939, 0.3235],
    [0.3438, 0.3367], [0.2891, 0.3388], [0.6061, 0.3235], [0.6538, 0.2876],
    [0.7086, 0.2877], [0.7523, 0.3193], [0.7109, 0.3388], [0.6562, 0.3367],
    [0.3553, 0.7050], [0.4105, 0.6683], [0.4624, 0.6476], [0.5000, 0.6578],
    [0.5376, 0.6476], [0.5895, 0.6683], [0.6447, 0.7050], [0.5906, 0.7358],
    [0.5403, 0.7477], [0.5000, 0.7511], [0.4597, 0.7477], [0.4094, 0.7358],
    [0.3815, 0.7040], [0.4616, 0.6906], [0.5000, 0.6932], [0.5384, 0.6906],
    [0.6185, 0.7040], [0.5385, 0.6930], [0.5000, 0.6968], [0.4615, 0.6930],
])

#: the fixed ring of points around the landmarks of :func:`landmark_warp`, this many px (at 64 px; scaled with
#: the crop) out
RING_MARGIN = 5.0
#: landmarks that drive the warp: everything but the jaw contour (0-16)
WARP_POINTS = tuple(range(17, 68))
#: what fills the far half of a frontalised turned face (step 2): its mirror image of the near half, or nothing
FILLS = ("mirror", "none")
#: nose tip and the two ends of the jaw contour, to tell the visible half of the face
NOSE_TIP, JAW_LEFT, JAW_RIGHT = 30, 0, 16


def visible_side(landmarks: np.ndarray) -> str:
    """``"left"`` when the image-left half of the face is the one turned towards the camera, else ``"right"``."""
    lm = np.asarray(landmarks, dtype=np.float64)
    left = abs(lm[NOSE_TIP, 0] - lm[JAW_LEFT, 0])
    right = abs(lm[JAW_RIGHT, 0] - lm[NOSE_TIP, 0])
    return "left" if left >= right else "right"


def crop_border(size: int) -> np.ndarray:
    """The 8 fixed points of a warp mesh on the border of a ``size x size`` crop (corners and edge midpoints)."""
    return np.array([[0, 0], [0.5, 0], [1, 0], [1, 0.5], [1, 1], [0.5, 1], [0, 1], [0, 0.5]]) * (size - 1)


def bilinear_sample(face: np.ndarray, points: np.ndarray) -> np.ndarray:
    """float64 values of the gray image ``face`` at ``points`` (``P x 2``, x y; bilinear, edges replicated)."""
    img = np.asarray(face, dtype=np.float64)
    h, w = img.shape
    q = np.asarray(points, dtype=np.float64)
    x, y = np.clip(q[:, 0], 0, w - 1.000001), np.clip(q[:, 1], 0, h - 1.000001)
    x0, y0 = x.astype(np.int64), y.astype(np.int64)
    fx, fy = x - x0, y - y0
    return (img[y0, x0] * (1 - fx) * (1 - fy) + img[y0, x0 + 1] * fx * (1 - fy)
            + img[y0 + 1, x0] * (1 - fx) * fy + img[y0 + 1, x0 + 1] * fx * fy)


def similarity_warp(face: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """A square uint8 ``face`` moved by the 2 x 3 ``matrix`` (crop -> new crop coordinates; bilinear, edges
    replicated), as uint8."""
    size = face.shape[0]
    inv = invert_transform(matrix)
    ys, xs = np.mgrid[0:size, 0:size]
    grid = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    out = bilinear_sample(face, apply_transform(inv, grid)).reshape(size, size)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def delaunay_barycentric(points: np.ndarray, pix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Delaunay-triangulate ``points`` (``K x 2``) and locate ``pix`` (``P x 2``) in it: ``(corners, bary,
    inside)``, where ``inside`` (``P``) marks the pixels in some triangle and, for those only, ``corners``
    (``n x 3``) are their triangle's point indices and ``bary`` (``n x 3``) their barycentric coordinates."""
    from scipy.spatial import Delaunay

    tri = Delaunay(points)
    simplex = tri.find_simplex(pix)
    inside = simplex >= 0
    aff = tri.transform[simplex[inside]]
    b = np.einsum("nij,nj->ni", aff[:, :2], pix[inside] - aff[:, 2])
    return tri.simplices[simplex[inside]], np.concatenate([b, 1.0 - b.sum(1, keepdims=True)], 1), inside


def mirror_weights(size: int, keep: str, band: float) -> np.ndarray:
    """Per column of a ``size``-wide face, the weight its mirror image (about the midline) gets when the ``keep``
    half ("left"/"right") is kept: 0 on that half, 1 on the other, linear over ``band`` px at the midline."""
    xs = np.arange(size, dtype=np.float64)
    right = np.clip((xs - 0.5 * (size - 1)) / band + 0.5, 0.0, 1.0)     # weight of the image-right half
    return right if keep == "left" else 1.0 - right


def piecewise_affine_warp(face: np.ndarray, src_points: np.ndarray, dst_points: np.ndarray) -> np.ndarray:
    """Warp the square gray ``face`` so that ``src_points`` (``K x 2``, x y, crop pixels) land on ``dst_points``:
    the destination points plus :func:`crop_border` are Delaunay-triangulated, and each output pixel is sampled
    (:func:`bilinear_sample`) at the same barycentric position of its triangle among the source points - the
    warp :class:`Frontalizer` does with its fixed template as the destination. Returns float64 ``S x S``;
    pixels whose triangle has only points with ``src == dst`` are copied exactly."""
    face = np.asarray(face)
    size = face.shape[-1]
    border = crop_border(size)
    dst = np.concatenate([np.asarray(dst_points, dtype=np.float64), border])
    src = np.concatenate([np.asarray(src_points, dtype=np.float64), border])
    yy, xx = np.mgrid[0:size, 0:size]
    pix = np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float64)
    corners, bary, inside = delaunay_barycentric(dst, pix)
    if not inside.all():
        raise ValueError("warp mesh does not cover the crop (destination points outside it?)")
    q = np.einsum("pk,pkd->pd", bary, src[corners])
    static = (src == dst).all(1)[corners].all(1)     # identity triangles: no resampling blur
    q[static] = pix[static]
    return bilinear_sample(face, q).reshape(size, size)


def ring_points(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Fixed points ``RING_MARGIN`` (scaled to the crop) outside the convex hull of ``landmarks``, inside the crop."""
    from scipy.spatial import ConvexHull

    lm = np.asarray(landmarks, dtype=np.float64)
    hull = lm[ConvexHull(lm).vertices]
    centre = hull.mean(0)
    out = hull - centre
    r = np.linalg.norm(out, axis=1, keepdims=True)
    corners = centre + out * (r + RING_MARGIN * size / 64.0) / np.maximum(r, 1e-9)
    # a dense fence (points every margin / 2) so that no triangle reaches from outside it to a landmark
    step = RING_MARGIN * size / 64.0 / 2
    ring = []
    for a, b in zip(corners, np.roll(corners, -1, axis=0)):
        n = max(1, int(np.ceil(np.linalg.norm(b - a) / step)))
        ring.extend(a + (b - a) * (t / n) for t in range(n))
    ring = np.clip(np.asarray(ring), 0, size - 1)
    border = crop_border(size)
    keep = [p for p in ring if np.linalg.norm(border - p, axis=1).min() > 1.0]
    dedup: list[np.ndarray] = []
    for p in keep:
        if all(np.linalg.norm(p - q) > 1.0 for q in dedup):
            dedup.append(p)
    return np.asarray(dedup, dtype=np.float64).reshape(-1, 2)


def landmark_warp(face: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Warp the square gray ``face`` so that its 68 landmarks ``src`` move to ``dst`` (both ``68 x 2``, crop
    pixels) and nothing beyond a fence of fixed points around both (:func:`ring_points`) moves: float64
    ``S x S``. The warp synthetic expressions (``nfgan.data.synth_expressions``) and geometric neutralisation
    (``nfgan.data.neutral_shape``) share."""
    face = np.asarray(face)
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    ring = ring_points(np.concatenate([src, dst]), face.shape[-1])
    return piecewise_affine_warp(face, np.concatenate([src, ring]), np.concatenate([dst, ring]))


class Frontalizer:
    """Frontalise ``size x size`` aligned faces (module docstring). Thread-safe, no state beyond the mesh."""

    def __init__(self, size: int = 64, band: float = 3.0):
        self.size = int(size)
        self.band = float(band)
        s = self.size - 1
        border = crop_border(self.size)
        self.border = border
        dst = np.concatenate([FRONTAL68[list(WARP_POINTS)] * s, border])
        yy, xx = np.mgrid[0:self.size, 0:self.size]
        pix = np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float64)
        self.pix = pix
        # P x 3 indices into the mesh, P x 3 barycentric coordinates
        self.vertices, self.bary, inside = delaunay_barycentric(dst, pix)
        if not inside.all():   # the border points span the crop, so this cannot happen
            raise RuntimeError("frontalisation mesh does not cover the crop")
        self.mid = 0.5 * s

    def sample_points(self, landmarks: np.ndarray, dst: np.ndarray | None = None) -> np.ndarray:
        """Where each output pixel is read in the input crop: ``size*size x 2`` (x, y). ``dst``: the 68 points
        (crop pixels, inside the crop) the landmarks go to instead of the template (``nfgan.data.frontal_shape``)."""
        lm = np.asarray(landmarks, dtype=np.float64)
        src = np.concatenate([lm[list(WARP_POINTS)], self.border])
        if dst is None:
            vertices, bary = self.vertices, self.bary
        else:
            points = np.asarray(dst, dtype=np.float64)[list(WARP_POINTS)]
            if not (np.isfinite(points).all() and (points >= 0).all() and (points <= self.size - 1).all()):
                raise ValueError("frontalisation destination points outside the crop")
            vertices, bary, _ = delaunay_barycentric(np.concatenate([points, self.border]), self.pix)
        return np.einsum("pk,pkd->pd", bary, src[vertices])

    def warp(self, face: np.ndarray, landmarks: np.ndarray, dst: np.ndarray | None = None) -> np.ndarray:
        """Step 1 alone: float ``size x size``."""
        return bilinear_sample(face, self.sample_points(landmarks, dst)).reshape(self.size, self.size)

    def symmetric_fill(self, warped: np.ndarray, keep: str) -> np.ndarray:
        """Step 2: the ``keep`` half ("left"/"right") and its mirror image, blended over ``band`` px."""
        xs = np.arange(self.size, dtype=np.float64)
        src_x = np.clip(2 * self.mid - xs, 0, self.size - 1)
        x0 = np.floor(src_x).astype(np.int64)
        x1 = np.minimum(x0 + 1, self.size - 1)
        f = src_x - x0
        mirrored = warped[:, x0] * (1 - f) + warped[:, x1] * f
        w_mirror = mirror_weights(self.size, keep, self.band)
        return warped * (1 - w_mirror) + mirrored * w_mirror

    def __call__(self, face: np.ndarray, landmarks: np.ndarray, fill: str = "mirror",
                 dst: np.ndarray | None = None) -> np.ndarray:
        """One turned face -> uint8 ``size x size`` frontalised face; ``fill``: ``"mirror"`` (step 2) or
        ``"none"`` (step 1 alone); ``dst``: where the landmarks go (68 x 2 crop pixels, symmetric about the
        crop's midline; None: the template :data:`FRONTAL68`)."""
        face = np.asarray(face)
        if face.shape != (self.size, self.size):
            raise ValueError(f"expected a {self.size}x{self.size} aligned face, got {face.shape}")
        lm = np.asarray(landmarks, dtype=np.float64)
        if lm.shape != (68, 2) or not np.isfinite(lm).all():
            raise ValueError("frontalisation needs 68 finite landmarks")
        if fill not in FILLS:
            raise ValueError(f"frontalisation fill {fill!r}: expected one of {', '.join(FILLS)}")
        out = self.warp(face, lm, dst)
        if fill == "mirror":
            out = self.symmetric_fill(out, visible_side(lm))
        return np.clip(np.round(out), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def frontalizer(size: int = 64) -> Frontalizer:
    return Frontalizer(size)


def is_turned(pose: str) -> bool:
    """A three-quarter or profile pose label (``frontal`` and unknown poses are not frontalised)."""
    return "3quarter" in str(pose) or "profile" in str(pose)


def frontalize_batch(faces: np.ndarray, landmarks: np.ndarray, poses: Sequence[str],
                     mirrored: Sequence[bool] | None = None, fill: str = "mirror", shape=None) -> np.ndarray:
    """uint8 ``N x S x S`` -> the same with every turned face (:func:`is_turned`) frontalised, the others copied.
    ``landmarks``: ``N x 68 x 2`` in the crop coordinates they were found in; ``mirrored[i]`` says face i was
    mirrored after that (by a trainer's or normaliser's flip rule), so its landmarks are mirrored to match
    (:func:`nfgan.data.align.mirror_landmarks`). ``fill``: what fills the far half (:data:`FILLS`). ``shape``: a
    ``nfgan.data.frontal_shape.FrontalShape``, to warp each face it applies to onto its own predicted frontal
    landmarks instead of the template (None: the template for all)."""
    faces = np.asarray(faces)
    out = np.array(faces, dtype=np.uint8, copy=True)
    size = faces.shape[-1]
    f = frontalizer(size)
    for i, pose in enumerate(poses):
        if is_turned(pose):
            lm = landmarks[i]
            lm = mirror_landmarks(lm, size) if mirrored is not None and mirrored[i] else np.asarray(lm, np.float64)
            dst = shape.destination(lm, size) if shape is not None and shape.applies_to(pose) else None
            out[i] = f(faces[i], lm, fill, dst)
    return out


def derive_frontal68(landmarks: np.ndarray, size: int) -> np.ndarray:
    """:data:`FRONTAL68` from ``N x 68 x 2`` landmarks of frontal faces (crop pixel coordinates): their mean,
    averaged with its own mirror image, as fractions of the pixel span."""
    mean = np.asarray(landmarks, dtype=np.float64).mean(0)
    return (mean + mirror_landmarks(mean, size)) / 2 / (size - 1)
