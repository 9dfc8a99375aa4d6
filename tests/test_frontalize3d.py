"""3D-model frontalisation (nfgan.data.frontalize3d) and the network-free baselines of nfgan evaluate
(nfgan.evaluation.baselines).

The 3D tests need eos-py (``pip install 'nfgan[synth]'``) and the Surrey Face Model folder (``$NFGAN_SFM``, else
``../shared/models/sfm``) and skip cleanly without them. Faces: the shipped London example photos (two people,
five views, neutral and smiling), prepared.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import REPO, SFM, make_prepared, need_sfm
from nfgan.data.dataset import PreparedDataset
from nfgan.data.frontalize import frontalize_batch
from nfgan.evaluation.baselines import Baseline, is_baseline
from nfgan.evaluation.metrics import ssim

EXAMPLES = REPO / "examples" / "london"


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> PreparedDataset:
    from nfgan.data import adapters
    from nfgan.data.prepare import prepare_dataset

    root = tmp_path_factory.mktemp("f3d") / "examples"
    prepare_dataset(adapters.load("csv", EXAMPLES / "manifest.csv"), root, workers=1, progress=False,
                    src_root=EXAMPLES)
    return PreparedDataset(root)


@pytest.fixture(scope="module")
def f3d():
    need_sfm()
    from nfgan.data.frontalize3d import Frontalizer3D

    return Frontalizer3D(SFM, 64)


def _rows(ds, **equals):
    return ds.indices(**equals).tolist()


def _target(ds, i):
    """The same person's frontal neutral face."""
    s = ds.records[i]["subject"]
    return np.asarray(ds.images[ds.indices([s], pose="frontal", expression="neutral")[0]])


def test_a_frontal_neutral_face_comes_back_nearly_unchanged(examples, f3d):
    for i in _rows(examples, pose="frontal", expression="neutral"):
        face, lm = np.asarray(examples.images[i]), np.asarray(examples.landmarks[i])
        out = f3d(face, lm, "frontal")
        assert out.shape == face.shape and out.dtype == np.uint8
        assert float(ssim(out[None], face[None], data_range=255)[0]) > 0.75
        assert np.abs(out.astype(float) - face).mean() < 8.0


def test_turned_faces_come_out_closer_to_the_real_frontal_face(examples, f3d):
    turned = _rows(examples, pose=["left_3quarter", "right_3quarter"], expression="neutral")
    assert len(turned) == 4
    raw = [float(ssim(np.asarray(examples.images[i])[None], _target(examples, i)[None], data_range=255)[0])
           for i in turned]
    made = [float(ssim(f3d(np.asarray(examples.images[i]), np.asarray(examples.landmarks[i]),
                           examples.records[i]["pose"])[None], _target(examples, i)[None], data_range=255)[0])
            for i in turned]
    assert np.mean(made) > np.mean(raw) + 0.05, (raw, made)


def test_visibility_hides_the_far_side_of_a_turned_face(examples, f3d):
    from nfgan.data.frontalize3d import yaw

    eyes = {k: f3d.sfm.vertex_of[k] for k in (36, 39, 42, 45)}       # outer/inner corners of both eyes
    for i in _rows(examples, expression="neutral", pose=["frontal", "left_3quarter", "right_3quarter"]):
        lm = np.asarray(examples.landmarks[i])
        camera, expressive, _ = f3d.fit(lm)
        _, vis = f3d.visibility(camera, expressive)
        outer = vis[eyes[36]], vis[eyes[45]]
        if examples.records[i]["pose"] == "frontal":
            assert yaw(camera) < 15 and min(outer) > 0.5
        else:   # one outer eye corner turns away from the camera
            assert yaw(camera) > 25 and min(outer) < 0.5 < max(outer), outer


def test_the_fitted_expression_is_left_out_of_the_output_geometry(examples, f3d):
    """A smile widens the mouth: the neutral placement brings the mouth corners closer than the expressive one
    (by a fraction of a pixel: eos fits the blendshapes weakly at 64 px, module docstring)."""
    mouth = f3d.sfm.vertex_of[48], f3d.sfm.vertex_of[54]

    def width(v):
        p = f3d.place(v)
        return float(np.linalg.norm(p[mouth[0]] - p[mouth[1]]))

    for i in _rows(examples, pose="frontal", expression="happy"):
        _, expressive, neutral = f3d.fit(np.asarray(examples.landmarks[i]))
        assert width(neutral) < width(expressive) - 0.1


def test_bad_landmarks_and_poor_fits_are_refused_with_the_reason(examples, f3d):
    from nfgan.data.frontalize3d import Frontalize3DError, frontalize3d_batch

    i = _rows(examples, pose="frontal", expression="neutral")[0]
    face, lm = np.asarray(examples.images[i]), np.asarray(examples.landmarks[i], dtype=np.float64)
    with pytest.raises(Frontalize3DError, match="68 finite landmarks"):
        f3d(face, np.where(np.arange(68)[:, None] == 3, np.nan, lm))
    with pytest.raises(Frontalize3DError, match="aligned face"):
        f3d(face[:32], lm)
    scrambled = lm[np.random.default_rng(0).permutation(68)]
    with pytest.raises(Frontalize3DError, match="fit refused"):
        f3d(face, scrambled)
    out, errors = frontalize3d_batch(np.stack([face, face]), np.stack([lm, scrambled]), ["frontal", "frontal"],
                                     sfm=SFM)
    assert errors[0] is None and "fit refused" in errors[1]
    assert np.array_equal(out[1], face) and not np.array_equal(out[0], face)


def test_frontalize2d_baseline_is_the_landmark_frontalisation(examples):
    rows = np.arange(len(examples))
    faces, lms = np.asarray(examples.images[rows]), np.asarray(examples.landmarks[rows])
    poses = [r["pose"] for r in examples.records]
    b = Baseline("frontalize2d", 64)
    assert np.array_equal(b.normalize(faces, poses, landmarks=lms), frontalize_batch(faces, lms, poses))
    with pytest.raises(ValueError, match="landmarks"):
        b.normalize(faces, poses)
    with pytest.raises(ValueError, match="not a baseline"):
        Baseline("frontalise", 64)
    assert is_baseline("frontalize3d") and is_baseline("frontalize3d:/x/sfm") and not is_baseline("runs/x")


def test_a_missing_sfm_folder_is_an_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match="no Surrey Face Model folder"):
        Baseline(f"frontalize3d:{tmp_path / 'nowhere'}", 64)


def test_evaluate_scores_the_baselines_beside_the_references(examples, tmp_path):
    need_sfm()
    from nfgan.evaluation.evaluate import evaluate

    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({"train": [], "val": [], "test": ["006", "124"]}))
    m = evaluate(["f2d=frontalize2d", f"f3d=frontalize3d:{SFM}"], examples.root, split="test", splits=splits,
                 out=tmp_path / "eval", identity=("dlib",), expression=("fer",), kid_subsets=2, progress=False)
    assert list(m["models"]) == ["input", "ground_truth", "f2d", "f3d"]
    for name in ("f2d", "f3d"):
        res = m["models"][name]
        assert res["kind"] == "baseline"
        assert 0.0 < res["groups"]["all"]["ssim"] < 1.0
    # frontal neutral inputs are their own targets: the 2D baseline leaves them alone (SSIM 1)
    assert m["models"]["f2d"]["groups"]["frontal/neutral"]["ssim"] == pytest.approx(1.0)
    assert (tmp_path / "eval" / "report.html").is_file()
    assert not (tmp_path / "eval" / "figures" / "fig5_filters.png").exists()


def test_evaluate_refuses_a_baseline_without_landmarks(tmp_path):
    from nfgan.evaluation.evaluate import evaluate

    root = make_prepared(tmp_path / "prepared", subjects=6)
    with pytest.raises(ValueError, match="no landmarks.npy"):
        evaluate(["f2d=frontalize2d"], root, split="train", splits=root / "splits.json", out=tmp_path / "eval",
                 identity=("dlib",), expression=(), kid_subsets=2, progress=False, figures=False)
