"""The NFGAN-augmentation guard: no test-fold subject may have reached NFGAN training."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nfgan.atomic import save_safetensors
from nfgan.fer.augment import AugmentLeakError, check_no_leak, read_subjects_file, recorded_train_subjects


def test_guard_refuses_overlap_and_unknown():
    check_no_leak(["L001", "L002"], ["S010", "S011"], "ckpt")          # disjoint: fine
    with pytest.raises(AugmentLeakError, match=r"ckpt.*1 subject\(s\) of fold 3 \(S011\)"):
        check_no_leak(["L001", "S011"], ["S010", "S011"], "ckpt", fold=3)
    with pytest.raises(AugmentLeakError, match="not recorded.*--augment-subjects"):
        check_no_leak(None, ["S010"], "ckpt")


def test_train_subjects_read_from_checkpoints_and_files(tmp_path):
    st = tmp_path / "g.safetensors"
    save_safetensors(st, {"w": torch.zeros(2)}, metadata={"train_subjects": json.dumps(["001", "002"])})
    assert recorded_train_subjects(st) == ["001", "002"]
    pt = tmp_path / "run" / "ckpt.pt"
    pt.parent.mkdir()
    torch.save({"state": {"train_subjects": ["003"]}, "weights": {"w": torch.zeros(1)}}, pt)
    assert recorded_train_subjects(pt) == ["003"]
    bare = tmp_path / "bare.pt"
    torch.save({"w": torch.zeros(1)}, bare)
    assert recorded_train_subjects(bare) is None
    (tmp_path / "subjects.txt").write_text("# London\n001\n\n002\n")
    assert read_subjects_file(tmp_path / "subjects.txt") == ["001", "002"]
    (tmp_path / "train_subjects.json").write_text(json.dumps({"train_subjects": ["004"]}))
    assert recorded_train_subjects(bare) == ["004"]           # side file beside the checkpoint


def test_train_subjects_from_nfgan_checkpoint_and_run_dir(tmp_path):
    from nfgan.checkpoint import save_checkpoint
    from nfgan.rundir import RunDir

    run = tmp_path / "london_run"
    path = save_checkpoint(RunDir(run).checkpoint(100), 100, {"enc": torch.nn.Linear(2, 2)},
                           extra={"config": {"x": 1}, "train_subjects": ["001", "017"]})
    assert recorded_train_subjects(path) == ["001", "017"]
    assert recorded_train_subjects(run) == ["001", "017"]        # the run dir's latest checkpoint
    check_no_leak(recorded_train_subjects(run), ["S010"], str(run))
    with pytest.raises(AugmentLeakError):
        check_no_leak(recorded_train_subjects(run), ["017"], str(run))


def test_train_subjects_from_trainer_split_file(tmp_path):
    from nfgan.checkpoint import save_checkpoint

    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({"train": ["001", "002"], "val": ["003"], "test": ["004"]}))
    path = save_checkpoint(tmp_path / "c.safetensors", 1, {"enc": torch.nn.Linear(1, 1)},
                           extra={"config": {"data": {"splits": str(splits)}}})
    assert recorded_train_subjects(path) == ["001", "002", "003"]



def test_references_per_subject_cap(tmp_path):
    """A folder of normalised faces (2 subjects x several images): the cap keeps the first ones per subject."""
    from PIL import Image

    from nfgan.fer.augment import AugmentSource
    from nfgan.fer.precropped import prepare_precropped

    subjects = ["A", "B", "A", "C", "A", "B"]
    lines = ["path,subject,expression,pose"]
    for i, s in enumerate(subjects):
        Image.fromarray(np.full((48, 48), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png,{s},neutral,frontal")
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    folder = prepare_precropped(tmp_path / "manifest.csv", tmp_path / "refs")
    (Path(folder) / "train_subjects.json").write_text("[]")
    src = AugmentSource(folder).load(None)
    assert src.subjects == subjects
    np.testing.assert_array_equal(src.indices_for(["A", "B"]), [0, 1, 2, 4, 5])
    np.testing.assert_array_equal(src.indices_for(["A", "B"], per_subject=1), [0, 1])
    np.testing.assert_array_equal(src.indices_for(["A", "C"], per_subject=2), [0, 2, 3])
    assert len(src.indices_for(["D"], per_subject=1)) == 0
    # the faces follow the manifest order: the capped indices pick the right images
    assert [int(src.faces[i].mean()) for i in src.indices_for(["A"], per_subject=2)] == [0, 80]


def test_references_from_a_folder_with_landmarks_go_through_the_models_input_rule(tmp_path):
    """A FER folder with landmarks.npy: the shipped default's references are what `nfgan normalize --data` makes
    (its input rule re-frames faces whose framing is off, which needs the landmarks); the cache remembers whether
    landmarks were used, so a folder that gains them is normalised again."""
    from conftest import make_prepared

    from nfgan.data.dataset import PreparedDataset
    from nfgan.fer.augment import AugmentSource
    from nfgan.inference import default_model_path, load_model

    root = make_prepared(tmp_path / "fer", subjects=2, poses=("frontal",), expressions=("neutral", "happy"))
    model = load_model(default_model_path())
    ds = PreparedDataset(root)
    plain = AugmentSource(default_model_path()).load(ds, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(plain.faces, model.normalize(np.asarray(ds.images), ds.column("pose"),
                                                               ds.column("flipped")))
    lm = np.tile(np.linspace(10, 50, 136, dtype=np.float32).reshape(1, 68, 2), (len(ds), 1, 1))
    np.save(root / "landmarks.npy", lm)          # a face shape far off the template: every face is re-framed
    ds = PreparedDataset(root)
    ruled = AugmentSource(default_model_path()).load(ds, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(ruled.faces, model.normalize(np.asarray(ds.images), ds.column("pose"),
                                                               ds.column("flipped"), landmarks=lm))
    assert np.abs(ruled.faces.astype(int) - plain.faces.astype(int)).mean() > 1
