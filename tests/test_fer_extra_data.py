"""Training on other datasets as well (`extra_data`, `--extra-data`) and moving faces into another set's framing
(`nfgan fer reframe`)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from nfgan.atomic import save_image, write_text
from nfgan.cli import main
from nfgan.data.dataset import PreparedDataset, write_manifest
from nfgan.fer import cv
from nfgan.fer.precropped import TEMPLATE_FRAMING, framing, prepare_precropped
from conftest import face as _face

REPO = Path(__file__).resolve().parents[1]


def _prepared(root: Path, faces: list[tuple[str, str, np.ndarray]], meta: dict | None) -> Path:
    """A prepared folder of (subject, expression, 64 px face) rows, with ``prepare_meta.json`` = ``meta``."""
    rows = []
    for i, (subject, expression, face) in enumerate(faces):
        rid = f"{i:06d}"
        save_image(root / "faces" / f"{rid}.png", face)
        rows.append({"id": rid, "path": f"faces/{rid}.png", "subject": subject, "expression": expression,
                     "pose": "frontal", "yaw_deg": "0", "flipped": "0", "source_path": "", "dataset": root.name})
    write_manifest(root, rows)
    if meta is not None:
        write_text(root / "prepare_meta.json", json.dumps(meta))
    return root


def _other_people(root: Path, like: Path, meta: dict | None = "like") -> Path:
    """Three new subjects (other backgrounds, other noise) with the tiny set's classes plus a neutral class the
    tiny set lacks, framed like ``like`` unless ``meta`` says otherwise."""
    rng = np.random.default_rng(7)
    faces = []
    for s in range(3):
        for c, name in enumerate(("anger", "happy", "surprise", "neutral")):
            for _ in range(2):
                small = _face(rng, min(c, 2), s + 10) if name != "neutral" else _face(rng, 0, s + 10) // 2
                faces.append((f"X{s}", name, np.asarray(Image.fromarray(small).resize((64, 64), Image.BICUBIC))))
    if meta == "like":
        meta = {"precropped": True, "framed_like": framing(PreparedDataset(like))}
    return _prepared(root, faces, meta)


def test_extra_faces_join_every_training_set_as_their_own_people_and_are_never_tested(tiny, tmp_path,
                                                                                     monkeypatch):  # noqa: F811
    data, folds = tiny
    extra = _other_people(tmp_path / "extra", data)
    # a second folder with more faces of one of those people (their neutral frames, say): the same identity
    more = _prepared(tmp_path / "more", [("X1", "happy", np.asarray(PreparedDataset(extra).images[10]) // 2 + 9)],
                     {"precropped": True, "framed_like": framing(PreparedDataset(data))})
    seen = []
    real_train_fold = cv.train_fold

    def spy(cfg, variant, faces, labels, subjects, n_classes, **kw):
        seen.append((len(faces), labels.copy(), subjects.copy()))
        return real_train_fold(cfg, variant, faces, labels, subjects, n_classes, **kw)

    monkeypatch.setattr(cv, "train_fold", spy)
    out = tmp_path / "run"
    assert main(["fer", "cv", "--data", str(data), "--folds", str(folds), "--variant", "2b", "--out", str(out),
                 "--only-fold", "0", "--epochs", "1", "--threads", "1", "--extra-data", str(extra), str(more)]) == 0
    rec = json.loads((out / "folds" / "fold_00.json").read_text())
    ds = PreparedDataset(data)
    n_main = sum(s not in rec["test_subjects"] for s in ds.column("subject"))
    assert rec["n_train"] == n_main
    assert rec["extra_data"] == [{"path": str(extra.resolve()), "faces": 18, "subjects": 3,
                                  "left_out_classes": ["neutral"], "left_out_faces": 6},
                                 {"path": str(more.resolve()), "faces": 1, "subjects": 1,
                                  "left_out_classes": [], "left_out_faces": 0}]
    (n_faces, labels, subjects), = seen
    assert n_faces == n_main + 19
    main_ids, extra_ids = set(subjects[:n_main].tolist()), set(subjects[n_main:].tolist())
    assert len(extra_ids) == 3 and not main_ids & extra_ids              # their own identities for the mining
    assert subjects[-1] == subjects[n_main + 6]                          # X1 in both folders: one person
    assert np.bincount(labels[n_main:]).tolist() == [6, 7, 6]            # the 3 classes, neutral left out
    assert {p["id"] for p in rec["predictions"]} <= set(ds.column("id"))
    assert len(rec["predictions"]) == sum(s in rec["test_subjects"] for s in ds.column("subject"))
    # the extra data is part of the run's configuration: a resume without it is refused
    assert main(["fer", "cv", "--data", str(data), "--folds", str(folds), "--variant", "2b", "--out", str(out),
                 "--only-fold", "0", "--epochs", "1", "--threads", "1"]) == 1

    # `fer train` takes them too, and its model file says so
    assert main(["fer", "train", "--data", str(data), "--out", str(tmp_path / "m"), "--epochs", "1",
                 "--threads", "1", "--extra-data", str(extra)]) == 0
    from safetensors import safe_open
    with safe_open(str(tmp_path / "m" / "fer_model.safetensors"), "pt") as f:
        meta = f.metadata()
    assert json.loads(meta["n_train"]) == len(ds) and json.loads(meta["extra_data"])[0]["faces"] == 18


def test_extra_data_that_cannot_be_trained_on_is_refused_before_anything_is_written(tiny, tmp_path,
                                                                                   capsys):  # noqa: F811
    data, folds = tiny
    base = ["fer", "cv", "--data", str(data), "--folds", str(folds), "--out", str(tmp_path / "run"),
            "--only-fold", "0", "--epochs", "1", "--threads", "1", "--extra-data"]
    # the cross-validation's own faces (under another name): test faces would be trained on
    copy = _prepared(tmp_path / "copy", [(r["subject"] + "b", r["expression"], f) for r, f in
                                         zip(PreparedDataset(data).records, PreparedDataset(data).images)],
                     {"precropped": True, "framed_like": framing(PreparedDataset(data))})
    assert main(base + [str(copy)]) == 1
    assert "36 faces (e.g. id 000000) are identical to faces of" in capsys.readouterr().err
    # faces cut another way (nfgan's template framing vs the tiny set's own pre-cropped framing)
    aligned = _other_people(tmp_path / "aligned", data, meta=None)
    assert framing(PreparedDataset(aligned)) == TEMPLATE_FRAMING
    assert main(base + [str(aligned)]) == 1
    err = capsys.readouterr().err
    assert f"faces cut as '{TEMPLATE_FRAMING}'" in err and "nfgan fer reframe --data" in err
    # another face size
    small = _prepared(tmp_path / "small", [("Y", "happy", np.zeros((48, 48), np.uint8))],
                      {"precropped": True, "framed_like": framing(PreparedDataset(data))})
    assert main(base + [str(small)]) == 1
    assert "extra faces are 48 px" in capsys.readouterr().err
    assert main(base + [str(tmp_path / "missing")]) == 1
    assert "missing" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_reframe_moves_an_aligned_face_onto_the_same_face_in_a_precropped_framing(tmp_path):
    """The same photo, once aligned by nfgan (template framing) and once cut loosely and shifted (a
    pre-cropped set's framing): reframed, the aligned face lands on the pre-cropped one."""
    from nfgan.data.align import FaceAligner

    photo = Image.open(REPO / "tests" / "data" / "london_001_front.jpg").convert("L")
    w, h = photo.size
    src = tmp_path / "src"
    src.mkdir()
    loose = photo.crop((int(0.27 * w), int(0.33 * h), int(0.71 * w), int(0.77 * h))).resize((48, 48), Image.LANCZOS)
    loose.save(src / "a.png")
    (src / "manifest.csv").write_text("path,subject,expression,pose\na.png,S1,happy,frontal\n")
    peak = prepare_precropped(src / "manifest.csv", tmp_path / "peak")
    aligned = _prepared(tmp_path / "aligned", [("L1", "happy", FaceAligner(size=64).align(photo).crop)],
                        {"options": {"padding": 0.25}})
    assert main(["fer", "reframe", "--data", str(aligned), "--like", str(peak), "--out", str(tmp_path / "re"),
                 "--quiet"]) == 0
    re = PreparedDataset(tmp_path / "re")
    assert re.column("subject") == ["L1"] and re.column("id") == ["000000"]
    assert framing(re) == framing(PreparedDataset(peak))
    want = np.asarray(PreparedDataset(peak).images[0], dtype=float)
    before = np.asarray(PreparedDataset(aligned).images[0], dtype=float)
    after = np.asarray(re.images[0], dtype=float)
    inner = (slice(8, 56), slice(8, 56))
    assert np.abs(after - want)[inner].mean() < 8.0
    assert np.abs(before - want)[inner].mean() > 2 * np.abs(after - want)[inner].mean()
    # the target must be a pre-cropped set
    assert main(["fer", "reframe", "--data", str(peak), "--like", str(aligned), "--out", str(tmp_path / "x")]) == 1
