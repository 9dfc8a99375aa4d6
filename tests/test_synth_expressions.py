"""nfgan synth-expressions (nfgan.data.synth_expressions): synthetic expressive faces from frontal neutral ones.

Needs eos-py (``pip install 'nfgan[synth]'``) and the Surrey Face Model folder (``$NFGAN_SFM``, else
``../shared/models/sfm``); the tests that use them skip cleanly, saying which is missing. Faces: six London
frontal neutral faces of ``out/london64`` when it exists, else the shipped example photos prepared.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SFM, need_sfm
from nfgan.data import sfm as SFMMOD
from nfgan.data import synth_expressions as SE
from nfgan.data.dataset import PreparedDataset
from nfgan.data.pairs import build_pairs

LONDON64 = REPO / "out" / "london64"
EXAMPLES = REPO / "examples" / "london"


def _subset(src: Path, out: Path, n: int) -> Path:
    """A prepared folder of the first ``n`` frontal neutral faces of ``src``, one per subject."""
    import shutil

    from nfgan.data.dataset import write_manifest

    ds = PreparedDataset(src)
    picked, seen = [], set()
    for i in ds.indices(pose="frontal", expression="neutral").tolist():
        s = ds.records[i]["subject"]
        if s not in seen:
            seen.add(s)
            picked.append(i)
        if len(picked) == n:
            break
    (out / "faces").mkdir(parents=True)
    rows = [ds.records[i] for i in picked]
    for r in rows:
        shutil.copyfile(src / r["path"], out / r["path"])
    write_manifest(out, rows, columns=ds.columns.header)
    np.save(out / "landmarks.npy", np.asarray(ds.landmarks[picked], dtype=np.float32))
    return out


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    need_sfm()
    base = tmp_path_factory.mktemp("synth")
    if (LONDON64 / "landmarks.npy").is_file():
        return _subset(LONDON64, base / "src", 6)
    from nfgan.data import adapters
    from nfgan.data.prepare import prepare_dataset

    prepare_dataset(adapters.load("csv", EXAMPLES / "manifest.csv"), base / "examples", workers=1, progress=False,
                    src_root=EXAMPLES)
    return _subset(base / "examples", base / "src", 6)


@pytest.fixture(scope="module")
def out(src, tmp_path_factory) -> Path:
    dst = tmp_path_factory.mktemp("synth_out") / "sfm"
    SE.synth_expressions(src, dst, SFM, per_face=6, strength=(0.8, 1.0), seed=3, progress=False)
    return dst


def _rows(folder: Path) -> list[dict]:
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_folder_loads_and_real_pairing_uses_synthetic_rows_as_inputs(src, out):
    ds = PreparedDataset(out)
    n_src = len(PreparedDataset(src))
    assert len(ds) == n_src * 7 and ds.landmarks.shape == (len(ds), 68, 2)
    rows = ds.records
    synth = [i for i, r in enumerate(rows) if r["synthetic"] == "1"]
    real = [i for i, r in enumerate(rows) if r["synthetic"] == "0"]
    assert len(synth) == 6 * n_src and len(real) == n_src
    assert {rows[i]["dataset"] for i in synth} == {rows[real[0]]["dataset"] + "_sfm"}
    assert {rows[i]["expression"] for i in synth} == {"anger", "disgust", "fear", "happy", "sadness", "surprise"}
    # copied rows: the source's bytes
    s = PreparedDataset(src)
    assert np.array_equal(np.asarray(ds.images[real]), np.asarray(s.images))
    assert np.array_equal(np.asarray(ds.landmarks[real]), np.asarray(s.landmarks))
    pairs = build_pairs(ds, ds.subjects())
    assert set(pairs.inputs.tolist()) == set(range(len(ds)))
    assert set(pairs.used_targets().tolist()) == set(real) and set(pairs.guides.tolist()) == set(real)
    for i, targets in zip(pairs.inputs.tolist(), pairs.target_choices):
        same = [j for j in real if rows[j]["subject"] == rows[i]["subject"]]
        assert targets.tolist() == same
        if rows[i]["synthetic"] == "1":
            assert rows[int(targets[0])]["id"] == rows[i]["sfm_source_id"]


def _motion(out: Path) -> dict[str, np.ndarray]:
    """Per blendshape: the warped minus the real landmarks of its synthetic rows (k x 68 x 2)."""
    ds = PreparedDataset(out)
    rows = ds.records
    index = {r["id"]: i for i, r in enumerate(rows)}
    lm = np.asarray(ds.landmarks, dtype=np.float64)
    by: dict[str, list] = {}
    for i, r in enumerate(rows):
        if r["synthetic"] == "1":
            by.setdefault(r["sfm_expression"], []).append(lm[i] - lm[index[r["sfm_source_id"]]])
    return {k: np.stack(v) for k, v in by.items()}


def test_landmark_motion_goes_the_blendshapes_way(out):
    m = _motion(out)
    brows_dy = {k: v[:, [19, 24], 1].mean() for k, v in m.items()}                 # brow middles; < 0: up
    corners = {k: (v[:, 54, 0] - v[:, 48, 0]).mean() for k, v in m.items()}         # > 0: apart
    opening = {k: (v[:, 66, 1] - v[:, 62, 1]).mean() for k, v in m.items()}         # > 0: mouth opens
    inner_brows = {k: (v[:, 22, 0] - v[:, 21, 0]).mean() for k, v in m.items()}    # < 0: together
    upper_lip = {k: v[:, 51, 1].mean() for k, v in m.items()}                       # < 0: raised
    chin = {k: v[:, 8, 1].mean() for k, v in m.items()}
    assert brows_dy["surprise"] < -1.0 and opening["surprise"] > 4.0 and chin["surprise"] > 1.5  # chin: clipped at the crop
    assert brows_dy["surprise"] == min(brows_dy.values()) and opening["surprise"] == max(opening.values())
    assert corners["happiness"] > 3.0 and corners["happiness"] == max(corners.values())
    assert corners["fear"] > 1.5 and brows_dy["fear"] < 0
    assert inner_brows["anger"] < -0.8 and brows_dy["anger"] > 0 and chin["anger"] < 0
    assert upper_lip["disgust"] < -1.2 and brows_dy["disgust"] > 0.2 and inner_brows["disgust"] < -0.5
    assert chin["sadness"] < -0.8
    # the jaw contour follows the chin when the mouth drops open
    assert m["surprise"][:, 6:11, 1].mean() > 1.0


def test_image_changes_where_landmarks_moved_and_nowhere_far(out):
    from scipy.spatial import Delaunay

    ds = PreparedDataset(out)
    rows = ds.records
    index = {r["id"]: i for i, r in enumerate(rows)}
    size = ds.size
    yy, xx = np.mgrid[0:size, 0:size]
    pix = np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float64)
    far_pixels = 0
    for i, r in enumerate(rows):
        if r["synthetic"] != "1":
            continue
        j = index[r["sfm_source_id"]]
        a, b = np.asarray(ds.images[j], np.float64), np.asarray(ds.images[i], np.float64)
        la, lb = np.asarray(ds.landmarks[j], np.float64), np.asarray(ds.landmarks[i], np.float64)
        moved = np.linalg.norm(lb - la, axis=1) > 1.0
        assert moved.any(), r["id"]
        near = np.zeros(size * size, bool)
        for p in lb[moved]:
            near |= np.linalg.norm(pix - p, axis=1) <= 2.5
        assert np.abs(a - b).ravel()[near].mean() > 2.0, r["id"]
        # far: more than 7 px outside the convex hull of the real and warped landmarks
        pts = np.concatenate([la, lb])
        c = pts.mean(0)
        grown = c + (pts - c) * (1 + 7.0 / np.linalg.norm(pts - c, axis=1, keepdims=True))
        far = Delaunay(grown).find_simplex(pix) < 0
        far_pixels += int(far.sum())
        assert np.array_equal(a.ravel()[far], b.ravel()[far]), r["id"]
    assert far_pixels > 0


def test_open_mouth_is_filled_dark(out):
    ds = PreparedDataset(out)
    rows = ds.records
    index = {r["id"]: i for i, r in enumerate(rows)}
    checked = 0
    for i, r in enumerate(rows):
        if r["sfm_expression"] != "surprise":
            continue
        real = np.asarray(ds.images[index[r["sfm_source_id"]]], np.float64)
        lm = np.asarray(ds.landmarks[i], np.float64)
        inside = SE._coverage(lm[60:68], ds.size) > 0.99
        assert inside.sum() >= 4, r["id"]
        img = np.asarray(ds.images[i], np.float64)
        assert img[inside].mean() < 0.5 * real[18:48, 16:48].mean(), r["id"]
        checked += 1
    assert checked


def test_same_seed_same_bytes_other_seed_other_faces(src, out, tmp_path):
    again = tmp_path / "again"
    SE.synth_expressions(src, again, SFM, per_face=6, strength=(0.8, 1.0), seed=3, progress=False)
    for name in ("manifest.csv", "faces.npy", "landmarks.npy", "prepare_report.csv"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    for r in _rows(out):
        assert (again / r["path"]).read_bytes() == (out / r["path"]).read_bytes()
    other = tmp_path / "other"
    SE.synth_expressions(src, other, SFM, per_face=6, strength=(0.8, 1.0), seed=4, progress=False)
    assert (other / "faces.npy").read_bytes() != (out / "faces.npy").read_bytes()


def test_meta_records_the_sfm_and_settings(out):
    import json

    meta = json.loads((out / "prepare_meta.json").read_text())
    assert meta["synth"]["seed"] == 3 and meta["synth"]["strength"] == [0.8, 1.0]
    assert meta["synth"]["blendshapes"] == {str(k): n for k, n in enumerate(SE.BLENDSHAPES)}
    assert Path(meta["synth"]["sfm"]) == SFM and meta["versions"]["eos-py"] != "unknown"
    assert meta["counts"]["skipped"] == 0 and meta["options"]["size"] == 64
    # the licensed model files are read, never copied
    assert not any(p.name in SE.SFM_FILES.values() for p in out.rglob("*"))


def test_per_face_and_expression_choice(src, tmp_path):
    need_sfm()
    dst = tmp_path / "two"
    SE.synth_expressions(src, dst, SFM, expressions=["happy", "surprise"], per_face=2, seed=0, progress=False)
    rows = [r for r in _rows(dst) if r["synthetic"] == "1"]
    by_source: dict[str, set] = {}
    for r in rows:
        by_source.setdefault(r["sfm_source_id"], set()).add(r["sfm_expression"])
        assert 0.5 <= float(r["sfm_strength"]) <= 1.0
    assert all(v == {"happiness", "surprise"} for v in by_source.values()) and len(rows) == 2 * len(by_source)


def test_bad_sfm_path_names_the_file(tmp_path, monkeypatch):
    with pytest.raises(SE.SynthError, match="no Surrey Face Model folder"):
        SFMMOD.sfm_folder(tmp_path / "nowhere")
    folder = tmp_path / "sfm"
    folder.mkdir()
    for name in list(SE.SFM_FILES.values())[:-1]:
        (folder / name).write_bytes(b"x")
    with pytest.raises(SE.SynthError, match="sfm_model_contours.json: missing"):
        SFMMOD.sfm_folder(folder)
    monkeypatch.setenv(SE.SFM_ENV, str(tmp_path / "env_sfm"))
    with pytest.raises(SE.SynthError, match="env_sfm"):
        SFMMOD.sfm_folder(None)


def test_unreadable_sfm_file_is_named(tmp_path):
    need_sfm()
    import shutil

    folder = tmp_path / "sfm"
    folder.mkdir()
    for name in SE.SFM_FILES.values():
        shutil.copyfile(SFM / name, folder / name)
    (folder / SE.SFM_FILES["blendshapes"]).write_bytes(b"not a blendshape file")
    with pytest.raises(SE.SynthError, match="expression_blendshapes_3448.bin"):
        SE.SFM.load(folder)


def test_missing_eos_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "eos", None)
    with pytest.raises(SE.SynthError, match=r"nfgan\[synth\]"):
        SFMMOD.require_eos()


def test_cli_refuses_bad_sfm_and_options(tmp_path, capsys):
    from nfgan.cli import main

    assert main(["synth-expressions", str(tmp_path / "src"), str(tmp_path / "out"), "--sfm",
                 str(tmp_path / "nosfm")]) == 2
    assert "nosfm" in capsys.readouterr().err
    assert main(["synth-expressions", str(tmp_path / "src"), str(tmp_path / "out"), "--expressions", "joyful"]) == 2
    assert "joyful" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# -- turned faces (--yaw; nfgan.data.synth_poses) ----------------------------------------------------------


def test_raster_keeps_the_nearest_triangle_and_its_barycentric_position():
    from nfgan.data.synth_poses import raster

    # two squares of two triangles each: the near one (depth 1) overlaps the far one (depth 0) on x 10..20
    xy = np.array([[2, 2], [20, 2], [20, 20], [2, 20], [10, 4], [30, 4], [30, 18], [10, 18]], dtype=np.float64)
    depth = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=np.float64)
    tri = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    owner, bary = raster(tri, xy, depth, 32)
    at = lambda x, y: owner[y * 32 + x]  # noqa: E731
    assert at(5, 10) in (0, 1) and at(15, 10) in (2, 3) and at(25, 10) in (2, 3) and at(15, 19) in (0, 1)
    assert at(0, 0) == -1 and at(31, 31) == -1
    have = np.flatnonzero(owner >= 0)
    pix = np.stack([have % 32, have // 32], 1)
    back = np.einsum("pk,pkd->pd", bary[have], xy[tri[owner[have]]])
    assert np.abs(back - pix).max() < 1e-9          # each centre lies in (or on) its triangle
    # swapping the depths puts the other square in front
    owner2, _ = raster(tri, xy, 1 - depth, 32)
    assert owner2[10 * 32 + 15] in (0, 1)


def test_background_follows_the_face_span():
    from nfgan.data.synth_poses import follow_background

    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (32, 32)).astype(np.float64)
    front = np.zeros((32, 32), dtype=bool)
    front[8:24, 8:24] = True
    assert np.allclose(follow_background(face, front, front), face, atol=1e-3)
    turned = np.zeros_like(front)
    turned[8:24, 4:20] = True                       # the face moved 4 px left, same width
    moved = follow_background(face, front, turned)
    assert np.allclose(moved[8:24, 4:20], face[8:24, 8:24], atol=1e-3)          # the face span, shifted
    assert np.allclose(moved[:, 0], face[:, 0]) and np.allclose(moved[:, 31], face[:, 31], atol=1e-3)  # edges stay
    # the far side's background is stretched from what lay beside the face, never the face again
    assert np.allclose(moved[8:24, 31], face[8:24, 31], atol=1e-3)


@pytest.fixture(scope="module")
def turned(src, tmp_path_factory) -> Path:
    dst = tmp_path_factory.mktemp("synth_turned") / "turned"
    SE.synth_expressions(src, dst, SFM, expressions=["neutral", "surprise"], per_face=4, seed=1, progress=False,
                         yaw=(20.0, 40.0))
    return dst


def test_turned_faces_are_turned_to_their_pose_label(src, turned):
    ds = PreparedDataset(turned)
    rows = ds.records
    index = {r["id"]: i for i, r in enumerate(rows)}
    lm = np.asarray(ds.landmarks, dtype=np.float64)
    faces = np.asarray(ds.images, dtype=np.float64)
    synth = [i for i, r in enumerate(rows) if r["synthetic"] == "1"]
    assert len(synth) == 4 * len(PreparedDataset(src))
    assert {rows[i]["expression"] for i in synth} == {"neutral", "surprise"}
    sides = set()
    for i in synth:
        r = rows[i]
        a = float(r["sfm_yaw"])
        assert 20.0 <= abs(a) <= 40.0
        assert r["pose"] == ("right_3quarter" if a > 0 else "left_3quarter")
        sides.add(r["pose"])
        j = index[r["sfm_source_id"]]
        nose = lambda p: p[30, 0] - p[36:48, 0].mean()  # noqa: E731  nose tip relative to the eyes
        assert np.sign(nose(lm[i]) - nose(lm[j])) == np.sign(a) and abs(nose(lm[i]) - nose(lm[j])) > 2.0
        # the eyes stay where they were; the near eye is now the wider one
        assert np.abs(lm[i, 36:48].mean(0) - lm[j, 36:48].mean(0)).max() < 1.5
        widths = np.ptp(lm[i, 36:42, 0]), np.ptp(lm[i, 42:48, 0])
        assert (widths[0] > widths[1]) == (a > 0)
        assert np.abs(faces[i] - faces[j]).mean() > 5.0
        if r["expression"] == "neutral":
            assert r["sfm_strength"] == "0.0000"
        else:
            assert lm[i, 66, 1] - lm[i, 62, 1] > lm[j, 66, 1] - lm[j, 62, 1] + 3.0     # the mouth opened
    assert sides == {"right_3quarter", "left_3quarter"}
    # the pairing code takes them as turned inputs of their person, with the copied real neutral faces as targets
    pairs = build_pairs(ds, ds.subjects())
    real = {i for i, r in enumerate(rows) if r["synthetic"] == "0"}
    assert set(synth) <= set(pairs.inputs.tolist()) and set(pairs.used_targets().tolist()) == real
    meta = __import__("json").loads((turned / "prepare_meta.json").read_text())
    assert meta["synth"]["yaw"] == [20.0, 40.0]


def test_a_turned_face_frontalises_back_near_its_source(turned):
    """The landmark frontalisation nfgan applies to turned inputs brings a synthetic turned face back close to
    the frontal face it was made from (the near half: the far half is filled by symmetry)."""
    from nfgan.data.align import mirror_landmarks
    from nfgan.data.frontalize import frontalizer

    ds = PreparedDataset(turned)
    rows = ds.records
    index = {r["id"]: i for i, r in enumerate(rows)}
    f = frontalizer(64)
    near_err, shift_err = [], []
    for i, r in enumerate(rows):
        if r["synthetic"] != "1" or r["expression"] != "neutral":
            continue
        face, lm = np.asarray(ds.images[i]), np.asarray(ds.landmarks[i], dtype=np.float64)
        j = index[r["sfm_source_id"]]
        src_face, src_lm = np.asarray(ds.images[j]), np.asarray(ds.landmarks[j], dtype=np.float64)
        if r["pose"].startswith("left"):              # as the trainer does (flip_left_poses)
            face, lm = face[:, ::-1], mirror_landmarks(lm, 64)
            src_face, src_lm = src_face[:, ::-1], mirror_landmarks(src_lm, 64)
        back = f(face, lm).astype(np.float64)
        ref = f.warp(src_face, src_lm)                # the source on the same frontal layout
        near = slice(14, 34)                          # image-left half (the near one once flipped), inner face
        near_err.append(np.abs(back[20:50, near] - ref[20:50, near]).mean())
        shift_err.append(np.abs(np.roll(ref, 6, axis=1)[20:50, near] - ref[20:50, near]).mean())
    assert near_err and np.mean(near_err) < 0.6 * np.mean(shift_err)


def test_yaw_options_are_checked(src, tmp_path):
    with pytest.raises(SE.SynthError, match="neutral needs --yaw"):
        SE.synth_expressions(src, tmp_path / "a", SFM, expressions=["neutral"], progress=False)
    with pytest.raises(SE.SynthError, match="--yaw 10 70"):
        SE.synth_expressions(src, tmp_path / "b", SFM, yaw=(10, 70), progress=False)
    with pytest.raises(SE.SynthError, match="--yaw 30 20"):
        SE.synth_expressions(src, tmp_path / "c", SFM, yaw=(30, 20), progress=False)
    assert not any(tmp_path.iterdir())


def test_unturned_folder_has_no_yaw_column(out):
    assert "sfm_yaw" not in _rows(out)[0]
    assert "yaw" not in __import__("json").loads((out / "prepare_meta.json").read_text())["synth"]
