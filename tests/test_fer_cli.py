"""End-to-end `nfgan fer` runs: a tiny prepared folder made here (always runs) and one real CK+ fold (slow)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from nfgan.cli import main
from nfgan.data.dataset import PreparedDataset

from conftest import CLASSES, REPO, normalised_folder as _normalised_folder


def test_precropped_import(tiny):
    data, folds = tiny
    ds = PreparedDataset(data)
    assert ds.images.shape == (36, 64, 64) and ds.images.dtype == np.uint8
    assert json.loads((data / "prepare_meta.json").read_text())["precropped"] is True
    assert sorted(set(ds.column("expression"))) == list(CLASSES)
    fold_subjects = [f["test_subjects"] for f in json.loads(folds.read_text())["folds"]]
    assert sorted(s for f in fold_subjects for s in f) == ds.subjects()


def test_cv_one_fold_resume_and_config_guard(tiny, tmp_path, capsys):
    data, folds = tiny
    out = tmp_path / "run"
    args = ["fer", "cv", "--data", str(data), "--folds", str(folds), "--variant", "2b", "--out", str(out),
            "--only-fold", "0", "--epochs", "2", "--threads", "1"]
    assert main(args) == 0
    for name in ("config.yaml", "folds/fold_00.json", "metrics.jsonl", "confusion.csv", "confusion.png",
                 "confusion_fold_00.csv", "summary.json"):
        assert (out / name).is_file(), name
    fold = json.loads((out / "folds" / "fold_00.json").read_text())
    cm = np.asarray(fold["confusion"])
    assert cm.shape == (3, 3) and cm.sum() == fold["n_test"] == 12      # 2 test subjects x 6 faces
    assert fold["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert len(fold["history"]) == 2 and fold["history"][0]["tuplet"] > 0   # the metric branch was trained
    summary = json.loads((out / "summary.json").read_text())
    assert summary["folds_done"] == 1 and summary["folds_total"] == 3 and not summary["complete"]
    assert yaml.safe_load((out / "config.yaml").read_text())["classes"] == list(CLASSES)
    # resume: the finished fold is skipped (file untouched)
    stamp = (out / "folds" / "fold_00.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "folds" / "fold_00.json").stat().st_mtime_ns == stamp
    # a different configuration into the same run dir is refused with a clear message
    assert main(args[:-4] + ["--epochs", "3"]) == 1
    assert "different configuration" in capsys.readouterr().err


def test_softmax_variant_has_no_metric_loss(tiny, tmp_path):
    data, folds = tiny
    out = tmp_path / "soft"
    assert main(["fer", "cv", "--data", str(data), "--folds", str(folds), "--variant", "softmax", "--out",
                 str(out), "--only-fold", "1", "--epochs", "1", "--threads", "1"]) == 0
    fold = json.loads((out / "folds" / "fold_01.json").read_text())
    assert fold["history"][0]["tuplet"] == 0.0 and fold["n_references"] == 0


def test_a_fold_predicts_with_its_net_and_keeps_the_class_probabilities(tiny, tmp_path):
    """Fold k trains one net with seed * 1000 + k on the other subjects; each test face's prediction is the
    argmax of that net's softmax, recorded with the probabilities."""
    from nfgan.fer.cv import load_config, normalise_all, predict_proba, train_fold

    data, folds = tiny
    out = tmp_path / "run"
    assert main(["fer", "cv", "--data", str(data), "--folds", str(folds), "--variant", "2b", "--only-fold", "2",
                 "--epochs", "2", "--threads", "1", "--out", str(out)]) == 0
    fold = json.loads((out / "folds" / "fold_02.json").read_text())
    assert "members" not in fold
    ds = PreparedDataset(data)
    classes = list(CLASSES)
    y = np.asarray([classes.index(e) for e in ds.column("expression")])
    subj = ds.column("subject")
    ids = {s: i for i, s in enumerate(sorted(set(subj)))}
    s_idx = np.asarray([ids[s] for s in subj])
    test = np.asarray([s in set(fold["test_subjects"]) for s in subj])
    faces = normalise_all(np.asarray(ds.images))
    net, info = train_fold(load_config(None, {"epochs": 2, "threads": 1}), "2b", faces[~test], y[~test],
                           s_idx[~test], 3, seed=2)
    assert info["history"] == fold["history"] and info["tau"] == fold["tau"]
    probs = predict_proba(net, faces[test], 60)
    assert [p["pred"] for p in fold["predictions"]] == [classes[i] for i in probs.argmax(1)]
    np.testing.assert_allclose([p["probs"] for p in fold["predictions"]], probs, atol=1e-5)


def test_removed_options_are_refused_and_the_shipped_configs_keep_their_run_hash(tiny, tmp_path, capsys):
    """trunk_lr_scale, label_smoothing, ensemble and references_as were removed (their code is at commit
    1b76572); at their defaults they never entered a run's configuration hash, so the run folders of the
    shipped configurations keep theirs (values from before the removal)."""
    from nfgan.fer.cv import _config_hash, load_config

    data, folds = tiny
    base = ["fer", "cv", "--data", str(data), "--folds", str(folds), "--only-fold", "0", "--epochs", "1",
            "--threads", "1", "--out", str(tmp_path / "run")]
    for option in ("trunk_lr_scale=0.1", "label_smoothing=0.1", "ensemble=2", "references_as=input",
                   "trunk=dlib_resnet", "trunk=faceapi112"):
        assert main(base + ["--set", option]) == 1
        assert option.split("=")[0] in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(base + ["--ensemble", "2"])
    assert not (tmp_path / "run").exists()
    want = {("ckplus", "2b"): "808d7a8917ca9616", ("ckplus", "2b_aug"): "02680a371d64e9fd",
            ("ckplus_c5", "2b"): "42a56f97b2082c16", ("ckplus_c5", "2b_aug"): "7771fb2d3b01ee69",
            ("jaffe", "2b"): "291bb0a08eaacae1", ("jaffe", "2b_aug"): "989573f8179f8423"}
    for (name, variant), digest in want.items():
        cfg = load_config(REPO / "configs" / "fer" / f"{name}.yaml")
        run_cfg = {**cfg, "data": "/data/fer", "folds_file": "/folds.json", "variant": variant,
                   "augment": "/models/nfgan.safetensors" if variant == "2b_aug" else None,
                   "classes": ["neutral", "happy"], "split": "test"}
        assert _config_hash(run_cfg) == digest, name


def test_augmentation_guard_refuses_test_subject_and_accepts_clean(tiny, tmp_path, capsys):
    data, folds = tiny
    test0 = json.loads(folds.read_text())["folds"][0]["test_subjects"]
    leaky = _normalised_folder(tmp_path / "a", data, ["L001", test0[0]])
    out = tmp_path / "leak"
    rc = main(["fer", "cv", "--data", str(data), "--folds", str(folds), "--variant", "2b_aug", "--augment",
               str(leaky), "--out", str(out), "--only-fold", "0", "--epochs", "1", "--threads", "1"])
    assert rc == 1
    err = capsys.readouterr().err
    assert test0[0] in err and "leak" in err
    assert not (out / "folds").exists() and not (out / "config.yaml").exists()   # refused before training
    clean = _normalised_folder(tmp_path / "b", data, ["L001", "L002"])
    out = tmp_path / "clean"
    assert main(["fer", "cv", "--data", str(data), "--folds", str(folds), "--variant", "2b_aug", "--augment",
                 str(clean), "--out", str(out), "--only-fold", "0", "--epochs", "1", "--threads", "1"]) == 0
    fold = json.loads((out / "folds" / "fold_00.json").read_text())
    assert fold["n_references"] == 6 - len(test0)           # one reference per training subject only


@pytest.mark.slow
def test_real_ckplus_one_fold(shared_data, tmp_path):
    data = tmp_path / "ck"
    assert main(["fer", "precropped", "--manifest", str(shared_data / "ckplus" / "manifest.csv"), "--prefix",
                 "peak/", "--out", str(data)]) == 0
    out = tmp_path / "run"
    assert main(["fer", "cv", "--data", str(data), "--folds", str(REPO / "src/nfgan/assets/folds/ckplus_peak_10fold.json"),
                 "--variant", "2b", "--config", str(REPO / "configs/fer/ckplus.yaml"), "--out", str(out),
                 "--only-fold", "0", "--epochs", "6"]) == 0
    fold = json.loads((out / "folds" / "fold_00.json").read_text())
    assert fold["n_test"] + fold["n_train"] == 981
    assert fold["accuracy"] > 0.6                            # chance is ~0.25 (surprise share)


def _nfgan_checkpoint(path: Path, train_subjects: list[str]) -> Path:
    """An untrained but real NFGAN encoder/decoder saved the way `nfgan train` saves checkpoints."""
    import torch

    from nfgan.checkpoint import save_checkpoint
    from nfgan.models.networks import Decoder, Encoder

    torch.manual_seed(0)
    return save_checkpoint(path, 1, {"enc": Encoder(256, 64), "dec": Decoder(256, 64)},
                           model={"latent_dim": 256, "image_size": 64}, extra={"train_subjects": train_subjects})


def test_augmentation_from_nfgan_checkpoint(tiny, tmp_path, capsys):
    data, folds = tiny
    test0 = json.loads(folds.read_text())["folds"][0]["test_subjects"]
    leaky = _nfgan_checkpoint(tmp_path / "leaky.safetensors", ["001", test0[-1]])
    assert main(["fer", "cv", "--data", str(data), "--folds", str(folds), "--variant", "2b_aug", "--augment",
                 str(leaky), "--out", str(tmp_path / "r1"), "--only-fold", "0", "--epochs", "1"]) == 1
    assert test0[-1] in capsys.readouterr().err
    assert not (tmp_path / "r1" / "augment_faces.npy").exists()   # refused before the NFGAN ran
    ckpt = _nfgan_checkpoint(tmp_path / "london.safetensors", ["001", "002"])
    out = tmp_path / "r2"
    assert main(["fer", "cv", "--data", str(data), "--folds", str(folds), "--variant", "2b_aug", "--augment",
                 str(ckpt), "--out", str(out), "--only-fold", "0", "--epochs", "1", "--threads", "1"]) == 0
    cached = np.load(out / "augment_faces.npy")          # NFGAN outputs for every face, computed once
    assert cached.shape == (36, 64, 64) and cached.dtype == np.uint8
    fold = json.loads((out / "folds" / "fold_00.json").read_text())
    assert fold["n_references"] == 36 - 6 * len(test0)   # the training subjects' faces only


def test_augmentation_from_a_pix2pix_checkpoint(tiny, tmp_path):
    """Another generator kind (the pix2pix U-Net of the default normaliser) serves as the reference source:
    its outputs are exactly what nfgan.inference.load_model gives, and the reference cap applies."""
    import torch

    from nfgan.checkpoint import save_checkpoint
    from nfgan.inference import load_model
    from nfgan.models.pix2pix import Pix2PixModel

    data, folds = tiny
    model = {"type": "pix2pix", "ngf": 8, "ndf": 8, "max_channels": 32, "dropout": 0.0, "d_layers": 3,
             "image_size": 64}
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "p2p.safetensors", 1, Pix2PixModel.build_generator(model), model=model,
                           extra={"train_subjects": ["L001", "L002"]})
    cfg = tmp_path / "cap.yaml"
    cfg.write_text("references_per_subject: 1\nthreads: 1\n")
    out = tmp_path / "run"
    assert main(["fer", "cv", "--data", str(data), "--folds", str(folds), "--config", str(cfg), "--variant",
                 "2b_aug", "--augment", str(ckpt), "--out", str(out), "--only-fold", "0", "--epochs", "1"]) == 0
    cached = np.load(out / "augment_faces.npy")
    ds = PreparedDataset(data)
    expected = load_model(ckpt).normalize(np.array(ds.images, dtype=np.uint8), poses=ds.column("pose"))
    np.testing.assert_array_equal(cached, expected)
    assert cached.std(axis=0).mean() > 0                  # real, input-dependent outputs
    test0 = json.loads(folds.read_text())["folds"][0]["test_subjects"]
    fold = json.loads((out / "folds" / "fold_00.json").read_text())
    assert fold["n_references"] == 6 - len(test0)          # one reference per training subject


def test_seed_study_script_runs_every_seed_and_variant_and_resumes(tiny, tmp_path):
    """tools/fer_seeds.sh: one `nfgan fer cv` per (seed, variant), JOBS at a time; a second call retrains nothing."""
    import os
    import subprocess
    import sys

    data, folds = tiny
    cfg = tmp_path / "quick.yaml"
    cfg.write_text("epochs: 1\nthreads: 1\n")
    env = {**os.environ, "DATA": str(data), "FOLDS": str(folds), "CONFIG": str(cfg), "RUNS": str(tmp_path / "runs"),
           "VARIANTS": "softmax 2b", "JOBS": "2", "NAME": "tiny", "NFGAN": f"{sys.executable} -m nfgan"}
    script = [str(REPO / "tools" / "fer_seeds.sh"), "3", "3"]
    done = subprocess.run(script, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    names = sorted(f"tiny_{v}_seed3" for v in ("softmax", "2b"))
    assert sorted(line.split()[1].rstrip(":") for line in done.stdout.splitlines()) == names
    for name in names:
        run = tmp_path / "runs" / name
        assert json.loads((run / "summary.json").read_text())["complete"], name
        assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 3
        assert (tmp_path / "runs" / "logs" / f"{name}.log").is_file()
    stamp = (tmp_path / "runs" / "tiny_2b_seed3" / "folds" / "fold_00.json").stat().st_mtime_ns
    again = subprocess.run(script, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count("done ") == 2
    assert (tmp_path / "runs" / "tiny_2b_seed3" / "folds" / "fold_00.json").stat().st_mtime_ns == stamp
    bad = subprocess.run(script, env={**env, "DATA": str(tmp_path / "missing")}, cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert bad.stdout.count("FAILED ") == 2 and "missing" in bad.stdout
