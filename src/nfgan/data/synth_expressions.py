"""``nfgan synth-expressions SRC OUT --sfm PATH``: synthetic expressive inputs from real frontal neutral faces.

Our training pairs are (input face -> the same person's real frontal neutral face), and the data sets we may use
have few expressions (London: neutral and smiling; canada: neutral only). This command makes expressive inputs
for every frontal neutral face of the prepared folder SRC with the Surrey Face Model (SFM, 3448 vertices) and its
six expression blendshapes, and writes them - paired by subject with the same real neutral faces as targets -
as an ordinary prepared folder OUT, so a run uses it as one more ``data.sources`` entry (no trainer change).

Per frontal neutral face of SRC (``pose == frontal``, ``expression == neutral``: the rows the pairing code uses
as targets):

1. **Fit.** eos (``eos-py``, ``pip install 'nfgan[synth]'``) fits the SFM's shape and a scaled orthographic pose
   to the face's 68 landmarks (``landmarks.npy``; iBUG numbering, 64 px crop coordinates; the jaw contour through
   the SFM's model contour). A fit whose mapped landmarks land on average more than ``MAX_FIT_ERROR`` inter-ocular
   distances from the real ones is skipped (``prepare_report.csv``: ``fit failed``).
2. **Expression.** K expressions (``--per-face``; distinct while K <= the number of expressions) are drawn, each
   at a strength drawn uniformly from ``--strength LO HI``. Blendshapes are additive, so the expressive landmarks
   are the *real* landmarks moved by the projection (the fitted camera) of ``strength x`` the blendshape's
   displacement of each landmark's model vertex: the fit error does not leak into the motion. Landmarks without
   an SFM vertex in ``ibug_to_sfm.txt`` take one: the jaw contour (iBUG 1-8, 10-17) the model-contour vertex
   (``sfm_model_contours.json``) that projects nearest to the real point, the inner mouth corners (61, 65) the
   outer corners' vertices (49, 55). Motions under ``MIN_MOTION`` px are set to zero.
3. **Warp.** The face is warped from its real landmarks to the expressive ones with
   :func:`nfgan.data.frontalize.landmark_warp` (the piecewise-affine warp of landmark frontalisation), on a mesh of
   the 68 points, a fixed fence of points ``RING_MARGIN`` px outside the convex hull of the real and moved
   landmarks (every ``RING_MARGIN / 2`` px) and the crop border: pixels outside the fence (background, hair)
   are copied unchanged. Moved landmarks are kept inside the crop (a dropping chin stops at its bottom edge).
4. **Mouth.** Where the inner-lip polygon (iBUG 61-68) gains area, the new mouth interior is filled with a dark
   value (``MOUTH_DARKNESS`` x the darkest quarter of the lip pixels' mean), anti-aliased at the lips and
   weighted by how much of the polygon is new, instead of the stretched lip texture the warp leaves there.

**Turned faces** (``--yaw LO HI``): each synthetic face is also turned by a yaw drawn uniformly in ``[LO, HI]``
degrees (after the expression draws, to a side drawn at random) and rendered through the fitted mesh instead of
warped in 2D (:mod:`nfgan.data.synth_poses`; :func:`synthesize_turned`); its ``pose`` is ``right_3quarter`` or
``left_3quarter`` (:func:`nfgan.data.align.pose_from_yaw`), the column ``sfm_yaw`` holds the signed yaw, the id
ends in ``-r<deg>``/``-l<deg>``, and ``neutral`` may be one of the expressions (strength 0). Without ``--yaw``
nothing of this applies and the output is byte-identical to what it was before the option existed.

Which blendshape is which expression: ``expression_blendshapes_3448.bin`` names them itself (eos's
``Blendshape.name``: anger, disgust, fear, happiness, sadness, surprise, in that order, as the SFM readme lists
them), and the landmark motion agrees. Projected on a London face (``out/london64`` row 0, 64 px crop, image y
down) at strength 1 the blendshapes move the landmarks by (px):

============  ========  ===========  =============  ==============  ==========  =================
index, name   brows dy  inner brows  mouth corners  mouth opening   chin dy     upper lip mid dy
                        dx (apart)   dx (apart)     (66-62 dy)
============  ========  ===========  =============  ==============  ==========  =================
0 anger       +0.23     -1.58        +0.54          +0.99           -0.87       -0.72
1 disgust     +0.67     -1.26        +0.86          +3.91           +0.33       -2.40
2 fear        -0.32     -0.85        +3.22          +2.85           +1.03       -0.28
3 happiness   -0.10     -0.22        +5.46          +4.41           +1.42       -2.17
4 sadness     -0.02     -0.85        +0.91          +0.80           -1.63       -0.60
5 surprise    -1.80     -0.28        +0.23          +8.99           +7.54       +0.49
============  ========  ===========  =============  ==============  ==========  =================

surprise raises the brows and drops the jaw (the mouth opens most); happiness pulls the mouth corners apart
most; anger and disgust lower the brows and pull them together, disgust raises the upper lip; fear widens the
mouth and lifts the brows slightly; sadness lifts the chin (the lower lip pushed up). ``tests/
test_synth_expressions.py`` asserts these directions on the warped landmarks.

OUT (written into a temporary folder beside it, renamed in one step; OUT must not exist or be empty):

* the frontal neutral rows of SRC, copied (same ids, subjects, columns, PNGs, landmarks), then after each its
  synthetic rows: id ``<src id>-sfm<k>-<expression>``, ``expression`` the blendshape's expression in the shared
  vocabulary (:func:`nfgan.data.schema.canonical_expression`: ``happiness`` -> ``happy``), ``dataset``
  ``<src dataset>_sfm``, ``synthetic`` 1 (0 on copied rows), ``sfm_expression``/``sfm_strength`` the
  blendshape and strength, ``sfm_source_id`` the neutral row it was made from, other columns as that row;
* ``faces.npy``, ``faces/*.png``, ``landmarks.npy`` (synthetic rows: the warped landmarks), ``manifest.csv``;
* ``prepare_report.csv``: the neutral faces no synthetic face was made from, and why;
* ``prepare_meta.json``: SRC's options (size, ...), the counts, versions (eos-py included) and ``synth``: the SFM
  folder, seed, expressions, strengths, faces per neutral face, the blendshape names by index.

The pairing code then pairs every synthetic row with its subject's copied neutral rows (targets are the frontal
neutral rows) and the copies with themselves, as for any prepared folder.

Deterministic: face i's draws come from ``numpy.random.default_rng([seed, i])`` (i = its SRC row), and the fit
is deterministic, so the same SRC, SFM, options and seed give the same bytes. Memory: SRC is memory-mapped; the
output faces are held (S x S bytes each) until written - linear in the faces.

Licence: the SFM is free for non-commercial use only. Its files are read from ``--sfm`` (default: ``$NFGAN_SFM``,
else ``../shared/models/sfm``) and never copied; a model trained with faces made from it is for non-commercial
research only.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from nfgan.data.align import eye_centres, pose_from_yaw
from nfgan.data.dataset import PreparedDataset, PreparedDatasetError
from nfgan.data.frontalize import RING_MARGIN, landmark_warp
from nfgan.data.frontalize3d import landmark_snap
from nfgan.data.schema import canonical_expression
from nfgan.data.sfm import BLENDSHAPES, DEFAULT_SFM, SFM, SFM_ENV, SFM_FILES, SynthError, eos_version
from nfgan.data.shard_merge import check_new_folder, csv_text
from nfgan.data.synth_poses import EYES, NOSE_TIP, render_turned, turn

#: ``--expressions`` name of a turned face with no expression (``--yaw`` only)
NEUTRAL = "neutral"
#: the largest ``--yaw``: beyond it a frontal photo does not show enough of the face to render it
MAX_YAW = 60.0
#: a fit whose mapped landmarks are on average farther than this (in inter-ocular distances) is refused
MAX_FIT_ERROR = 0.15
#: landmark motions below this many pixels are set to zero
MIN_MOTION = 0.05
#: new mouth interior: this fraction of the darkest quarter of the lip pixels' mean
MOUTH_DARKNESS = 0.35
INNER_LIP = tuple(range(60, 68))
OUTER_LIP = tuple(range(48, 60))
JAW = tuple(range(0, 17))
SYNTH_COLUMNS = ("synthetic", "sfm_expression", "sfm_strength", "sfm_source_id")


class FitFailed(Exception):
    pass


def landmark_vertices(sfm: SFM, camera: np.ndarray, vertices: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """An SFM vertex per iBUG landmark (module docstring, step 2); raises :class:`FitFailed` for a poor fit."""
    proj = vertices @ camera[:2, :3].T + camera[:2, 3]
    mapped = np.asarray(sorted(sfm.vertex_of), dtype=np.int64)
    verts = np.full(68, -1, dtype=np.int64)
    verts[mapped] = [sfm.vertex_of[i] for i in mapped.tolist()]
    iod = float(np.linalg.norm(np.subtract(*eye_centres(landmarks))))
    err = float(np.linalg.norm(proj[verts[mapped]] - landmarks[mapped], axis=1).mean())
    if not np.isfinite(err) or iod <= 0 or err > MAX_FIT_ERROR * iod:
        raise FitFailed(f"mean landmark error {err:.2f} px = {err / max(iod, 1e-9):.2f} inter-ocular distances "
                        f"(limit {MAX_FIT_ERROR})")
    cand = sfm.contour_vertices
    for i in JAW:
        if verts[i] < 0:
            verts[i] = cand[np.argmin(np.linalg.norm(proj[cand] - landmarks[i], axis=1))]
    for inner, outer in ((60, 48), (64, 54)):
        if verts[inner] < 0:
            verts[inner] = verts[outer]
    if (verts < 0).any():
        raise FitFailed(f"no SFM vertex for landmarks {np.flatnonzero(verts < 0).tolist()}")
    return verts


def expression_motion(sfm: SFM, camera: np.ndarray, verts: np.ndarray, blendshape: int,
                      strength: float) -> np.ndarray:
    """``68 x 2`` image motion of the landmarks under ``strength x`` blendshape ``blendshape``."""
    d = sfm.deformations[blendshape][verts] @ camera[:2, :3].T * float(strength)
    d[np.linalg.norm(d, axis=1) < MIN_MOTION] = 0.0
    return d


def _polygon_area(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _coverage(poly: np.ndarray, size: int, sub: int = 4) -> np.ndarray:
    """Fraction of each pixel (``size x size``) inside the polygon, from ``sub x sub`` samples per pixel."""
    from matplotlib.path import Path as MplPath

    off = (np.arange(sub) + 0.5) / sub - 0.5
    g = np.arange(size)[:, None] + off[None, :]
    ys, xs = g.reshape(-1)[:, None], g.reshape(-1)[None, :]
    pts = np.stack(np.broadcast_arrays(xs, ys), -1).reshape(-1, 2)
    inside = MplPath(poly).contains_points(pts).reshape(size, sub, size, sub)
    return inside.mean(axis=(1, 3))


def smooth_closed(poly: np.ndarray, n: int = 64) -> np.ndarray:
    """``n`` points of the closed Catmull-Rom curve through the polygon's corners (a round mouth, not a diamond)."""
    p = np.asarray(poly, dtype=np.float64)
    k = len(p)
    t = np.linspace(0, k, n, endpoint=False)
    i = np.floor(t).astype(np.int64)
    u = (t - i)[:, None]
    p0, p1, p2, p3 = p[(i - 1) % k], p[i % k], p[(i + 1) % k], p[(i + 2) % k]
    return 0.5 * (2 * p1 + (p2 - p0) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u ** 2
                  + (3 * p1 - p0 - 3 * p2 + p3) * u ** 3)


def synthesize(face: np.ndarray, landmarks: np.ndarray, motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One expressive face: (uint8 ``S x S``, float32 ``68 x 2`` landmarks) from a face, its landmarks and the
    landmarks' motion (steps 3 and 4 of the module docstring)."""
    face = np.asarray(face)
    size = face.shape[-1]
    src = np.asarray(landmarks, dtype=np.float64)
    dst = src + motion
    dst = np.clip(dst, 0, size - 1)
    out = landmark_warp(face, src, dst)
    out = fill_mouth(out, face, src, dst, dst)
    return np.clip(np.round(out), 0, 255).astype(np.uint8), dst.astype(np.float32)


def fill_mouth(out: np.ndarray, face: np.ndarray, src: np.ndarray, opened: np.ndarray,
               dst: np.ndarray) -> np.ndarray:
    """Step 4: where the inner-lip polygon of the ``opened`` landmarks (the expression, seen from the front) has
    more area than the face's own (``src``), fill its new interior dark, drawn at the output landmarks ``dst``
    (``opened`` itself for a face that is not turned)."""
    size = np.asarray(face).shape[-1]
    inner_src = src[list(INNER_LIP)]
    a_src, a_new = _polygon_area(inner_src), _polygon_area(opened[list(INNER_LIP)])
    if a_new > a_src + 0.25:
        lips = _coverage(src[list(OUTER_LIP)], size) > 0.5
        lips &= _coverage(inner_src, size) < 0.5
        values = np.sort(np.asarray(face, dtype=np.float64)[lips]) if lips.any() else np.asarray([64.0])
        dark = MOUTH_DARKNESS * float(values[:max(1, len(values) // 4)].mean())
        new = min(1.0, 2.0 * (a_new - a_src) / a_new)
        alpha = _coverage(smooth_closed(dst[list(INNER_LIP)]), size) * new
        out = out * (1 - alpha) + dark * alpha
    return out


def synthesize_turned(sfm: SFM, face: np.ndarray, landmarks: np.ndarray, camera: np.ndarray,
                      vertices: np.ndarray, verts: np.ndarray, deformation: np.ndarray | None,
                      yaw_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """One turned (and, with ``deformation`` (``V x 3``), expressive) face: (uint8 ``S x S``, float32 ``68 x 2``
    landmarks), rendered through the fitted mesh (:mod:`nfgan.data.synth_poses`); ``yaw_deg`` > 0 turns the nose
    to the image's right."""
    face = np.asarray(face)
    size = face.shape[-1]
    src = np.asarray(landmarks, dtype=np.float64)
    cam = np.asarray(camera, dtype=np.float64)
    moved = vertices if deformation is None else vertices + deformation
    front_xy = vertices @ cam[:2, :3].T + cam[:2, 3]
    opened_xy = moved @ cam[:2, :3].T + cam[:2, 3]
    turned_xy, depth = turn(cam, moved, verts[list(EYES)], int(verts[NOSE_TIP]), yaw_deg)
    dst = np.clip(src + (turned_xy - front_xy)[verts], 0, size - 1)
    opened = src + (opened_xy - front_xy)[verts]
    inner = np.arange(17, 68)
    anchors = front_xy[verts[inner]]
    move = landmark_snap(front_xy, anchors, src[inner] - anchors, size)
    out, _ = render_turned(face, sfm.triangles, front_xy + move, turned_xy + move, depth)
    out = fill_mouth(out, face, src, opened, dst)
    return np.clip(np.round(out), 0, 255).astype(np.uint8), dst.astype(np.float32)


def choose(rng: np.random.Generator, n_expr: int, per_face: int, lo: float, hi: float):
    """``per_face`` (expression index, strength) draws: distinct expressions while there are enough."""
    if per_face <= n_expr:
        picks = rng.permutation(n_expr)[:per_face]
    else:
        picks = np.concatenate([rng.permutation(n_expr) for _ in range(-(-per_face // n_expr))])[:per_face]
    strengths = rng.uniform(lo, hi, size=per_face)
    return [(int(e), round(float(s), 4)) for e, s in zip(picks, strengths)]


def _png_bytes(face: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(face).save(buf, format="PNG")
    return buf.getvalue()


def _check_out(out: Path) -> None:
    check_new_folder(out, SynthError, " (remove it or choose another OUT)")


def synth_expressions(src: str | os.PathLike, out: str | os.PathLike, sfm: str | os.PathLike | None = None,
                      expressions: Sequence[str] = BLENDSHAPES, strength: tuple[float, float] = (0.5, 1.0),
                      per_face: int = 3, seed: int = 0, progress: bool = True,
                      yaw: tuple[float, float] = (0.0, 0.0)) -> dict:
    """Write OUT from SRC (module docstring); returns prepare_meta.json's content. :class:`SynthError` for an
    unusable SFM folder, SRC, OUT or option (nothing written); ``OSError`` for a failed write (OUT absent)."""
    t0 = time.time()
    src, out = Path(src), Path(out)
    lo, hi = float(strength[0]), float(strength[1])
    if not (0 <= lo <= hi) or not np.isfinite(hi):
        raise SynthError(f"--strength {lo} {hi}: need 0 <= LO <= HI")
    if per_face < 1:
        raise SynthError(f"--per-face {per_face}: need at least 1")
    yaw_lo, yaw_hi = float(yaw[0]), float(yaw[1])
    turning = yaw_hi > 0
    if not (0 <= yaw_lo <= yaw_hi <= MAX_YAW):
        raise SynthError(f"--yaw {yaw_lo:g} {yaw_hi:g}: need 0 <= LO <= HI <= {MAX_YAW:g} degrees")
    known = {canonical_expression(b): b for b in BLENDSHAPES + (NEUTRAL,)}
    wanted = []
    for e in expressions:
        name = known.get(canonical_expression(e))
        if name is None:
            raise SynthError(f"--expressions: {e!r} is none of the SFM's blendshapes {', '.join(BLENDSHAPES)} "
                             f"(or {NEUTRAL}, with --yaw)")
        if name not in wanted:
            wanted.append(name)
    if not wanted:
        raise SynthError("--expressions: none given")
    if NEUTRAL in wanted and not turning:
        raise SynthError(f"--expressions: {NEUTRAL} needs --yaw (an unturned neutral face would be a copy)")
    _check_out(out)
    model = SFM.load(sfm)
    try:
        ds = PreparedDataset(src)
    except PreparedDatasetError as e:
        raise SynthError(str(e)) from None
    if ds.landmarks is None:
        raise SynthError(f"{src / 'landmarks.npy'}: missing (the fit needs each face's 68 landmarks)")
    size = ds.size
    records = ds.records
    header = list(ds.columns.header)
    for c in ("id", "path", "subject", "expression", "pose", "dataset", "source_path"):
        if c not in header:
            raise SynthError(f"{src / 'manifest.csv'}: no {c} column")
    columns = header + [c for c in SYNTH_COLUMNS + (("sfm_yaw",) if turning else ()) if c not in header]
    rows_idx = ds.indices(pose="frontal", expression="neutral")
    blend_index = [BLENDSHAPES.index(n) if n != NEUTRAL else -1 for n in wanted]

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.synth-", suffix=".tmp", dir=out.parent))
    try:
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)
        (tmp / "faces").mkdir()
        rows, faces, lms, report = [], [], [], []
        made = {n: 0 for n in wanted}
        fit_seconds = 0.0
        from tqdm import tqdm

        for i in tqdm(rows_idx.tolist(), desc="synth-expressions", unit="face", disable=not progress,
                      file=sys.stderr, dynamic_ncols=True):
            rec = records[i]
            face = np.asarray(ds.images[i])
            lm = np.asarray(ds.landmarks[i], dtype=np.float64)
            rows.append({**rec, "synthetic": "0", "sfm_expression": "", "sfm_strength": "", "sfm_source_id": ""})
            faces.append(face)
            lms.append(lm.astype(np.float32))
            shutil.copyfile(src / rec["path"], tmp / rec["path"])
            if lm.shape != (68, 2) or not np.isfinite(lm).all():
                report.append([rec["source_path"], "no landmarks", f"{rec['id']}: landmarks.npy row {i} not finite"])
                continue
            rng = np.random.default_rng([int(seed), int(i)])
            tf = time.time()
            try:
                camera, vertices = model.fit(lm, size)
                verts = landmark_vertices(model, camera, vertices, lm)
            except FitFailed as e:
                report.append([rec["source_path"], "fit failed", f"{rec['id']}: {e}"])
                continue
            except (RuntimeError, ValueError) as e:
                report.append([rec["source_path"], "fit failed", f"{rec['id']}: eos: {e}"])
                continue
            finally:
                fit_seconds += time.time() - tf
            draws = choose(rng, len(blend_index), per_face, lo, hi)
            # the yaw draws come after the expression draws, so an unturned folder's faces do not depend on them
            yaws = ([round(float(a) * (1 if r < 0.5 else -1), 2)
                     for a, r in zip(rng.uniform(yaw_lo, yaw_hi, size=per_face), rng.random(per_face))]
                    if turning else [0.0] * per_face)
            for k, ((e, s), turn_deg) in enumerate(zip(draws, yaws)):
                b = blend_index[e]
                name = BLENDSHAPES[b] if b >= 0 else NEUTRAL
                extra = {}
                if turning:
                    s = s if b >= 0 else 0.0
                    img, new_lm = synthesize_turned(model, face, lm, camera, vertices, verts,
                                                    model.deformations[b] * s if b >= 0 else None, turn_deg)
                    side = "r" if turn_deg >= 0 else "l"
                    rid = f"{rec['id']}-sfm{k}-{name}-{side}{abs(turn_deg):.0f}"
                    extra = {"pose": pose_from_yaw(turn_deg), "sfm_yaw": f"{turn_deg:.2f}"}
                else:
                    img, new_lm = synthesize(face, lm, expression_motion(model, camera, verts, b, s))
                    rid = f"{rec['id']}-sfm{k}-{name}"
                path = f"faces/{rid}.png"
                with open(tmp / path, "wb") as f:
                    f.write(_png_bytes(img))
                rows.append({**rec, "id": rid, "path": path, "expression": canonical_expression(name),
                             "dataset": f"{rec.get('dataset') or 'data'}_sfm", "synthetic": "1",
                             "sfm_expression": name, "sfm_strength": f"{s:.4f}", "sfm_source_id": rec["id"],
                             **extra})
                faces.append(img)
                lms.append(new_lm)
                made[name] += 1
        if not rows:
            raise SynthError(f"{src}: no frontal neutral faces (pose frontal, expression neutral) to start from")
        from nfgan.atomic import write_text

        write_text(tmp / "manifest.csv", csv_text(columns, ([r.get(c, "") for c in columns] for r in rows)))
        write_text(tmp / "prepare_report.csv", csv_text(["source_path", "reason", "detail"], report))
        for name, arr in (("faces.npy", np.stack(faces).astype(np.uint8)),
                          ("landmarks.npy", np.stack(lms).astype(np.float32))):
            with open(tmp / name, "wb") as f:
                np.save(f, arr)
        reasons: dict[str, int] = {}
        for r in report:
            reasons[r[1]] = reasons.get(r[1], 0) + 1
        n_synth = sum(made.values())
        options = dict(ds.meta.get("options") or {"size": size})
        options["size"] = size
        import PIL
        import scipy

        meta = {
            "options": options, "src_root": str(src),
            "counts": {"neutral_faces": len(rows_idx), "copied": len(rows_idx), "synthetic": n_synth,
                       "skipped": len(report), "reasons": dict(sorted(reasons.items())), "by_expression": made,
                       "rows": len(rows)},
            "synth": {"sfm": str(model.folder), "sfm_abs": str(model.folder.resolve()), "seed": int(seed),
                      "expressions": wanted, "strength": [lo, hi], "per_face": int(per_face),
                      "blendshapes": {str(k): n for k, n in enumerate(model.names)},
                      "expression_labels": {n: canonical_expression(n) for n in BLENDSHAPES},
                      "max_fit_error_iod": MAX_FIT_ERROR, "ring_margin_px64": RING_MARGIN,
                      "mouth_darkness": MOUTH_DARKNESS,
                      **({"yaw": [yaw_lo, yaw_hi]} if turning else {}),
                      "licence": "Surrey Face Model: non-commercial use only; models trained with these faces are "
                                 "for non-commercial research only"},
            "seconds": round(time.time() - t0, 2), "fit_seconds": round(fit_seconds, 2),
            "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": {**(ds.meta.get("versions") or {}), "eos-py": eos_version(), "numpy": np.__version__,
                         "scipy": scipy.__version__, "pillow": PIL.__version__, "nfgan": _nfgan_version()},
        }
        write_text(tmp / "prepare_meta.json", json.dumps(meta, indent=2) + "\n")
        _check_out(out)
        if out.is_dir():
            out.rmdir()
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _nfgan_version() -> str:
    from nfgan import __version__

    return __version__


# ----------------------------------------------------------------------------------------------------------
# CLI


def add_arguments(p) -> None:
    p.add_argument("src", metavar="SRC_PREPARED", type=Path,
                   help="a prepared folder (nfgan prepare) with landmarks.npy; its frontal neutral faces are used")
    p.add_argument("out", metavar="OUT", type=Path, help="the prepared folder to write (must not exist, or be empty)")
    p.add_argument("--sfm", metavar="PATH", default=None,
                   help=f"the Surrey Face Model folder ({', '.join(SFM_FILES.values())}); default ${SFM_ENV}, "
                        f"else {DEFAULT_SFM}. Non-commercial licence: never copied into OUT")
    p.add_argument("--expressions", default=",".join(BLENDSHAPES),
                   help=f"comma-separated blendshapes to use (default {','.join(BLENDSHAPES)})")
    p.add_argument("--strength", type=float, nargs=2, default=(0.5, 1.0), metavar=("LO", "HI"),
                   help="blendshape strength drawn uniformly in [LO, HI] (default 0.5 1.0)")
    p.add_argument("--per-face", type=int, default=3, metavar="K",
                   help="synthetic faces per neutral face, distinct expressions while K <= their number (default 3)")
    p.add_argument("--yaw", type=float, nargs=2, default=(0.0, 0.0), metavar=("LO", "HI"),
                   help=f"also turn every synthetic face by a yaw drawn uniformly in [LO, HI] degrees (at most "
                        f"{MAX_YAW:g}), to a side drawn at random, rendered through the fitted 3D face; pose "
                        f"column left/right_3quarter (frontal below 15). Default 0 0: not turned. With --yaw, "
                        f"'{NEUTRAL}' may be one of --expressions")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same bytes")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.epilog = ("OUT holds SRC's frontal neutral faces (copied) and the synthetic expressive faces made from them "
                "(dataset <src>_sfm, synthetic=1; turned 3/4 faces with --yaw); train with it as one more data.sources entry. The SFM is "
                "licensed for non-commercial use: models trained with OUT are for non-commercial research only. "
                "Exit status: 0 written, 2 refused (nothing written).")


def run(args) -> int:
    """``nfgan synth-expressions``: 0 written, 2 refused or failed (OUT not written)."""
    try:
        meta = synth_expressions(args.src, args.out, args.sfm,
                                 [e.strip() for e in args.expressions.split(",") if e.strip()],
                                 tuple(args.strength), args.per_face, args.seed, progress=not args.quiet,
                                 yaw=tuple(args.yaw))
    except SynthError as e:
        print(f"nfgan synth-expressions: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"nfgan synth-expressions: cannot write {args.out}: {e}", file=sys.stderr)
        return 2
    c = meta["counts"]
    print(f"wrote {args.out}: {c['copied']} neutral faces copied, {c['synthetic']} synthetic faces "
          f"({', '.join(f'{k} {v}' for k, v in c['by_expression'].items())}); skipped {c['skipped']}"
          + (f" ({', '.join(f'{k}: {v}' for k, v in c['reasons'].items())}; see {Path(args.out) / 'prepare_report.csv'})"
             if c["skipped"] else "") + f"; {meta['seconds']} s")
    return 0
