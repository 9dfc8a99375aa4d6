"""`nfgan mine` (nfgan.data.mine): target mining without expression / pose labels.

Always run: the rule on controlled inputs (a real face's landmarks from the shipped example photos, edited: open
mouth, closed eyes, raised mouth corners, tilted nose, a 30 degree yaw, blur, side light), the ranking and ``k``,
the label check, and the whole command on the example photos prepared in a temporary folder (DATA unchanged, the
mined folder loads, builds training pairs and trains). With ../shared/data: JAFFE prepared in a temporary
folder and mined, precision and person recall above the floors measured in docs/mining.md.
"""
from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SHARED_DATA, p2p_config
from nfgan.cli import main
from nfgan.data import mine as M
from nfgan.data.dataset import PreparedDataset

EXAMPLES = REPO / "examples" / "london"


def _prepare(records, out: Path, src_root) -> Path:
    from nfgan.data.prepare import prepare_dataset

    prepare_dataset(records, out, workers=1, progress=False, src_root=src_root)
    return out


@pytest.fixture(scope="module")
def example_data(tmp_path_factory) -> Path:
    """The 20 shipped London example photos (2 people, neutral and smiling, 5 views) prepared: 16 faces."""
    from nfgan.data import adapters

    return _prepare(adapters.load("csv", EXAMPLES / "manifest.csv"), tmp_path_factory.mktemp("ex") / "data", EXAMPLES)


@pytest.fixture(scope="module")
def base(example_data):
    """Image and landmarks of person 006's frontal neutral face."""
    ds = PreparedDataset(example_data)
    i = int(ds.indices(["006"], expression="neutral", pose="frontal")[0])
    return np.asarray(ds.images[i]).copy(), np.asarray(ds.landmarks[i], dtype=np.float64).copy()


def _measure(images, lms, yaws=None, p_faceapi=None, p_fer=None):
    n = len(images)
    neutral = {"faceapi": (np.full(n, 0.99) if p_faceapi is None else np.asarray(p_faceapi, float), ["neutral"] * n),
               "fer": (np.full(n, 0.8) if p_fer is None else np.asarray(p_fer, float), ["neutral"] * n)}
    return M.measure_faces(np.asarray(images), np.asarray(lms), yaws, neutral=neutral)


def _reasons(images, lms, subjects=None, rule=M.MineRule(), **kw):
    m = _measure(images, lms, **kw)
    return M.decide(m, subjects or ["a"] * len(images), rule), m


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------------------------- measures / rule


def test_the_real_frontal_neutral_face_passes_every_check(base):
    img, lm = base
    dec, m = _reasons([img], [lm])
    assert dec.reasons == [[]] and dec.target.tolist() == [True]
    assert abs(m["pitch_deg"][0]) < 20 and 0.25 < m["eye_open"][0] < 0.45 and m["mouth_open"][0] < 0.05
    assert abs(m["smile"][0]) < 2.5 and abs(m["yaw_deg"][0]) < 5      # yaw from the landmarks (no manifest yaw)


def test_open_mouth_is_rejected_with_reason_mouth_open(base):
    img, lm = base
    iod = M.eye_frame(lm)[3]
    opened = lm.copy()
    opened[[65, 66, 67], 1] += 0.3 * iod          # lower inner lip down
    opened[[55, 56, 57, 58, 59], 1] += 0.3 * iod  # lower outer lip with it
    assert M.mouth_openness(opened) > M.mouth_openness(lm) + 0.25
    dec, _ = _reasons([img, img], [lm, opened])
    assert dec.reasons[0] == [] and "mouth" in dec.reasons[1]
    assert M.REASONS["mouth"] == "mouth open"
    assert dec.target.tolist() == [True, False]


def test_yaw_of_30_degrees_is_rejected(base):
    img, lm = base
    dec, m = _reasons([img, img], [lm, lm], yaws=[2.0, 30.0])
    assert m["yaw_deg"].tolist() == [2.0, 30.0]        # the manifest's yaw is used when given
    assert dec.reasons == [[], ["yaw"]]
    dec, _ = _reasons([img], [lm], yaws=[-30.0])
    assert dec.reasons == [["yaw"]] and dec.persons_without_target == ["a"]


def test_closed_or_winking_eyes_are_rejected(base):
    img, lm = base
    closed = lm.copy()
    for top, bottom, (a, d) in (((37, 38), (41, 40), (36, 39)), ((43, 44), (47, 46), (42, 45))):
        mid = (lm[a, 1] + lm[d, 1]) / 2
        closed[list(top) + list(bottom), 1] = mid
    wink = lm.copy()
    wink[[43, 44, 47, 46], 1] = (lm[42, 1] + lm[45, 1]) / 2        # one eye only
    assert M.eye_openness(closed) < 0.05 and M.eye_openness(wink) < 0.05 < 0.25 < M.eye_openness(lm)
    dec, _ = _reasons([img] * 3, [lm, closed, wink])
    assert dec.reasons[0] == [] and dec.reasons[1] == ["eyes"] and dec.reasons[2] == ["eyes"]


def test_raised_mouth_corners_are_a_smile(base):
    img, lm = base
    iod = M.eye_frame(lm)[3]
    smile = lm.copy()
    smile[[48, 54], 1] -= 0.08 * iod                     # corners up
    smile[48, 0] -= 0.05 * iod
    smile[54, 0] += 0.05 * iod                           # and wider
    assert M.smile_index(smile) > M.smile_index(lm) + 4
    dec, _ = _reasons([img, img], [lm, smile])
    assert dec.reasons == [[], ["smile"]]


def test_pitch_follows_the_nose_tip_and_a_gross_tilt_is_rejected(base):
    img, lm = base
    iod = M.eye_frame(lm)[3]
    up, down = lm.copy(), lm.copy()
    up[30, 1] -= 0.3 * iod            # nose tip rises towards the eyes: looking up
    down[30, 1] += 0.3 * iod
    p0, pu, pd = (M.estimate_pitch(x) for x in (lm, up, down))
    assert pu > p0 + 30 and pd < p0 - 30
    assert pu - p0 == pytest.approx(np.degrees(0.3 / M.PITCH_PER_RAD), rel=1e-3)   # eye line ~ level
    dec, _ = _reasons([img] * 3, [lm, up, down])
    assert dec.reasons == [[], ["pitch"], ["pitch"]]


def test_classifier_thresholds(base):
    img, lm = base
    dec, _ = _reasons([img] * 3, [lm] * 3, p_faceapi=[0.95, 0.5, 0.95], p_fer=[0.5, 0.5, 0.01])
    assert dec.reasons == [[], ["faceapi"], []]                    # fer is no veto by default ...
    dec, _ = _reasons([img] * 3, [lm] * 3, p_faceapi=[0.95, 0.5, 0.95], p_fer=[0.5, 0.5, 0.01],
                      rule=M.MineRule(min_fer=0.05))
    assert dec.reasons == [[], ["faceapi"], ["fer"]]                # ... unless asked
    assert dec.target.tolist() == [True, False, False]


def test_blur_and_side_light(base):
    img, lm = base
    from PIL import Image, ImageFilter

    blurred = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(2.5)))
    side = img.astype(np.float64)
    mid = int(round(lm[27:31, 0].mean()))
    side[:, :mid] *= 0.25                                         # the image-left half of the face in shadow
    side = side.round().astype(np.uint8)
    dec, m = _reasons([img, img, blurred, side], [lm] * 4)
    assert m["sharpness_rel"][2] < 0.5 and "sharpness" in dec.reasons[2]
    assert m["light_asym"][3] > 0.5 and "light" in dec.reasons[3]
    assert dec.reasons[0] == dec.reasons[1] == []


def test_missing_landmarks_are_rejected_not_crashed(base):
    img, lm = base
    dec, _ = _reasons([img, img], [lm, np.full((68, 2), np.nan)])
    assert dec.reasons[0] == [] and dec.reasons[1][0] == "landmarks"
    m = M.measure_faces(np.asarray([img]), None, neutral={"faceapi": ([0.99], ["neutral"]), "fer": ([0.9], ["neutral"])})
    assert M.decide(m, ["a"]).target.tolist() == [False]


def test_ranking_k_and_persons_without_a_target(base):
    img, lm = base
    # person a: three acceptable faces of decreasing neutrality; person b: only a turned face
    dec, _ = _reasons([img] * 4, [lm] * 4, subjects=["a", "a", "a", "b"], yaws=[0, 0, 0, 40],
                      p_faceapi=[0.92, 0.999, 0.95, 0.999])
    assert dec.target.tolist() == [False, True, False, False]
    assert dec.rank.tolist() == [3, 1, 2, 0] and dec.persons_without_target == ["b"]
    assert dec.status() == ["accepted", "target", "accepted", "rejected"]
    dec2, _ = _reasons([img] * 4, [lm] * 4, subjects=["a", "a", "a", "b"], yaws=[0, 0, 0, 40],
                       p_faceapi=[0.92, 0.999, 0.95, 0.999], rule=M.MineRule(k=2))
    assert dec2.target.tolist() == [False, True, True, False]
    s = M.score({"p_neutral_faceapi": np.array([0.999, 0.999]), "p_neutral_fer": np.array([0.5, 0.5]),
                 "smile": np.array([0.0, 2.0]), "yaw_deg": np.array([0.0, 0.0]),
                 "sharpness_person": np.array([1.0, 1.0])})
    assert s[0] > s[1]          # saturated classifiers: the flatter mouth wins


def test_rule_options_are_checked():
    with pytest.raises(M.MineError):
        M.MineRule(k=0).check()
    with pytest.raises(M.MineError):
        M.MineRule(max_yaw=-1).check()
    with pytest.raises(M.MineError):
        M.MineRule(max_smile=float("nan")).check()
    assert M.MineRule().check() == M.MineRule()


def test_label_check_counts():
    c = M.label_check(subjects=["a", "a", "b", "b", "c"],
                      label_expression=["neutral", "happy", "neutral", "neutral", "happy"],
                      label_pose=["frontal", "frontal", "left_3quarter", "frontal", "frontal"],
                      target=[True, False, True, False, True])
    assert (c["positives"], c["targets"], c["correct_targets"]) == (2, 3, 1)
    assert c["precision"] == pytest.approx(1 / 3) and c["recall"] == pytest.approx(1 / 2)
    assert (c["persons_with_positive"], c["persons_with_target"], c["persons_with_correct_target"]) == (2, 3, 1)
    assert c["person_recall"] == pytest.approx(0.5) and c["persons_target_without_positive"] == 1
    yale = M.label_check(["s"], ["neutral_glasses"], ["frontal"], [True], ("neutral", "neutral_glasses"))
    assert yale["precision"] == 1.0


def test_calibration_reproduces_the_frozen_constants_on_one_face(base):
    _, lm = base
    c = M.calibrate([lm], [0.0])
    assert c["PITCH_DROP0"] == pytest.approx(M.nose_drop(lm), abs=1e-4)
    assert c["SMILE_LIFT"][0] == pytest.approx(M.mouth_shape(lm)[0], abs=1e-4)


# ----------------------------------------------------------------------------------------------- the command


def test_mine_the_example_photos(example_data, tmp_path, capsys):
    before = _digest(example_data)
    out = tmp_path / "mined"
    assert main(["mine", str(example_data), "-o", str(out), "--labels", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "2 targets for 2 persons" in printed
    assert "precision 100.0%" in printed and "person recall 100.0%" in printed
    assert _digest(example_data) == before                         # DATA unchanged

    mined = PreparedDataset(out)
    data = PreparedDataset(example_data)
    assert len(mined) == len(data) == 16
    assert np.array_equal(np.asarray(mined.images), np.asarray(data.images))
    assert np.array_equal(np.asarray(mined.landmarks), np.asarray(data.landmarks))
    for rec in mined.records:
        assert (out / rec["path"]).is_file()
    targets = mined.indices(expression="neutral", pose="frontal")
    chosen = {(mined.records[i]["subject"], mined.records[i]["label_expression"], mined.records[i]["label_pose"])
              for i in targets}
    assert chosen == {("006", "neutral", "frontal"), ("124", "neutral", "frontal")}
    others = [r for i, r in enumerate(mined.records) if i not in set(targets.tolist())]
    assert {r["expression"] for r in others} == {M.UNLABELLED}
    from nfgan.data.align import pose_from_yaw
    assert all(r["pose"] == pose_from_yaw(float(r["yaw_deg"])) for r in others)
    # the original labels are kept; the report has every face with its status and reasons
    assert [r["label_expression"] for r in mined.records] == data.column("expression")
    assert [r["label_pose"] for r in mined.records] == data.column("pose")
    with open(out / "mine_report.csv", newline="") as f:
        report = list(csv.DictReader(f))
    assert len(report) == 16 and {r["status"] for r in report} <= {"target", "accepted", "rejected"}
    assert all(r["reasons"] for r in report if r["status"] == "rejected")
    turned = [r for r in report if r["label_pose"] != "frontal"]
    assert turned and all("turned (yaw)" in r["reasons"] for r in turned)
    summary = json.loads((out / "mine_summary.json").read_text())
    assert summary["targets"] == 2 and summary["persons_without_target"] == []
    assert summary["rule"] == M.MineRule().__dict__ and summary["faces"] == 16

    # training pairs come from the mined targets, and the trainer accepts the folder
    from nfgan.data.pairs import build_pairs, make_splits, save_splits
    from nfgan.training.loop import train

    pairs = build_pairs(mined, ["006", "124"])
    assert sorted(mined.records[i]["label_expression"] for i in pairs.guides) == ["neutral", "neutral"]
    assert len(pairs) == 16 and not pairs.missing_targets
    save_splits(out / "splits.json", make_splits(["006", "124"], counts=(1, 0, 1)))
    assert train(p2p_config(out), tmp_path / "run", progress=False)["step"] == 2

    # a second run needs --force, and replaces only a folder nfgan mine wrote
    assert main(["mine", str(example_data), "-o", str(out), "--quiet"]) == 2
    assert main(["mine", str(example_data), "-o", str(out), "--quiet", "--force", "--max-yaw", "50", "-k", "3"]) == 0
    assert json.loads((out / "mine_summary.json").read_text())["rule"]["k"] == 3
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    assert main(["mine", str(example_data), "-o", str(other), "--quiet", "--force"]) == 2
    assert (other / "keep.txt").read_text() == "x"
    assert main(["mine", str(example_data), "-o", str(example_data / "inside"), "--quiet"]) == 2
    assert main(["mine", str(example_data), "-o", str(tmp_path / "k0"), "--quiet", "-k", "0"]) == 2
    assert not (tmp_path / "k0").exists()
    assert _digest(example_data) == before


def test_a_person_with_only_a_closed_mouth_smile_gets_no_target(example_data, tmp_path):
    """Person 124's frontal neutral face removed: the smiling frontal face passes the classifiers (face-api
    calls it neutral) but not the smile check, so 124 gets no target and is listed; 006 keeps theirs."""
    ds = PreparedDataset(example_data)
    drop = int(ds.indices(["124"], expression="neutral", pose="frontal")[0])
    keep = [i for i in range(len(ds)) if i != drop]
    m = M.measure_faces(np.asarray(ds.images)[keep], np.asarray(ds.landmarks)[keep],
                        [ds.records[i]["yaw_deg"] for i in keep])
    dec = M.decide(m, [ds.records[i]["subject"] for i in keep])
    assert dec.persons_without_target == ["124"]
    smiling = [j for j, i in enumerate(keep) if ds.records[i]["subject"] == "124" and ds.records[i]["pose"] == "frontal"]
    assert "smile" in dec.reasons[smiling[0]]
    chosen = [ds.records[keep[j]] for j in np.flatnonzero(dec.target)]
    assert [(r["subject"], r["expression"], r["pose"]) for r in chosen] == [("006", "neutral", "frontal")]


# ----------------------------------------------------------------------------------------------- real data


@pytest.mark.shared_data
def test_jaffe_precision_floor(tmp_path):
    """JAFFE (10 people, 213 photos, 30 neutral) prepared here and mined: measured 9 of 9 targets correct and 9 of
    10 people given a correct one (docs/mining.md); floors with a margin of one person."""
    root = SHARED_DATA / "jaffe"
    if not root.is_dir():
        pytest.skip(f"JAFFE not found at {root}")
    from nfgan.data import adapters

    data = _prepare(adapters.load("jaffe", root), tmp_path / "jaffe64", root)
    out = tmp_path / "mined"
    M.mine(data, out)
    mined = PreparedDataset(out)
    c = M.label_check(mined.column("subject"), mined.column("label_expression"), mined.column("label_pose"),
                      [s == "target" for s in mined.column("mine_status")])
    assert c["persons"] == 10 and c["persons_with_positive"] == 10
    assert c["precision"] >= 0.85, c
    assert c["persons_with_correct_target"] >= 8, c
