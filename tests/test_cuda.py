"""GPU paths: FER cross-validation, training and prediction, the NFGAN and pix2pix trainers and the normaliser on
a CUDA device, each checked against the same weights on the CPU.

The CUDA tests skip where torch sees no GPU (CI has none); on a GPU machine run ``pytest tests/test_cuda.py``.
The refusal of an unusable device runs everywhere.
"""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from conftest import make_prepared, p2p_config, tiny_config, tiny_nets
from nfgan.cli import main
from nfgan.data.dataset import PreparedDataset

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture()
def exact_cuda_math():
    """Full fp32 convolutions and products (no TF32), so CPU and GPU outputs can be compared tightly."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def test_an_unusable_device_is_refused_before_anything_is_written(tiny, tmp_path, capsys, monkeypatch):  # noqa: F811
    from nfgan.device import DeviceError
    from nfgan.fer.classifier import FERClassifier

    data, folds = tiny
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    base = ["fer", "cv", "--data", str(data), "--folds", str(folds), "--out", str(tmp_path / "run"),
            "--only-fold", "0", "--epochs", "1", "--threads", "1"]
    assert main(base + ["--device", "cuda"]) == 1
    assert "sees no CUDA device" in capsys.readouterr().err
    assert main(base + ["--device", "tpu"]) == 1
    assert "device must be cpu, cuda or cuda:N, got 'tpu'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert main(["fer", "train", "--data", str(data), "--out", str(tmp_path / "m"), "--device", "cuda"]) == 1
    assert "sees no CUDA device" in capsys.readouterr().err and not (tmp_path / "m").exists()
    # a model trained on the CPU, asked to run on a missing GPU
    monkeypatch.undo()
    assert main(["fer", "train", "--data", str(data), "--out", str(tmp_path / "m"), "--epochs", "1",
                 "--threads", "1"]) == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="sees no CUDA device"):
        FERClassifier(tmp_path / "m", device="cuda")


def test_every_command_refuses_an_unusable_device_with_the_reason(tmp_path, capsys, monkeypatch):
    """``nfgan train``, ``normalize`` and ``traverse`` check the device as the FER commands do (one
    ``nfgan.device.resolve_device``): a clear error and exit status 1, nothing written, no torch traceback."""
    import yaml

    from nfgan.device import DeviceError, resolve_device
    from nfgan.inference.normalizer import Normalizer
    from nfgan.training.loop import train

    prepared = make_prepared(tmp_path / "prepared", subjects=3)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(prepared)))
    face = tmp_path / "face.png"
    from PIL import Image
    Image.fromarray(np.asarray(PreparedDataset(prepared).images[0])).save(face)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    commands = {"train": ["train", "--config", str(config), "--out", str(tmp_path / "runs"), "--name", "r"],
                "normalize": ["normalize", str(face), "-o", str(tmp_path / "normalized")],
                "traverse": ["traverse", str(face), "-o", str(tmp_path / "morph.png")],
                "evaluate": ["evaluate", str(face), "--data", str(prepared), "--out", str(tmp_path / "eval")]}
    for cmd, argv in commands.items():
        for device, reason in [("cuda", "this torch build sees no CUDA device"),
                               ("cuda:1", "this torch build sees no CUDA device"),
                               ("gpu", "device must be cpu, cuda or cuda:N, got 'gpu'"),
                               ("mps", "device must be cpu, cuda or cuda:N, got 'mps'")]:
            # normalize is a batch command: 2 = nothing could run; train and traverse fail with 1
            assert main(argv + ["--device", device]) == (2 if cmd == "normalize" else 1), (cmd, device)
            err = capsys.readouterr().err
            assert reason in err and "Traceback" not in err, (cmd, device, err)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "normalized").exists()
    assert not (tmp_path / "morph.png").exists() and not (tmp_path / "eval").exists()
    with pytest.raises(DeviceError, match="sees no CUDA device"):
        train(tiny_config(prepared, device="cuda"), tmp_path / "api_run", progress=False, feature_nets=tiny_nets())
    assert not (tmp_path / "api_run").exists()
    with pytest.raises(DeviceError, match="sees no CUDA device"):
        Normalizer.from_checkpoint(device="cuda")

    # a machine with two GPUs, as torch would report it: cuda:1 is accepted, cuda:2 refused by count
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(DeviceError, match=r"torch sees 2 CUDA device\(s\): cuda:0..cuda:1"):
        resolve_device("cuda:2")
    assert resolve_device("cpu") == torch.device("cpu")


@cuda
def test_fer_cv_fold_on_cuda(tiny, tmp_path):  # noqa: F811
    data, folds = tiny
    out = tmp_path / "run"
    args = ["fer", "cv", "--data", str(data), "--folds", str(folds), "--variant", "2b", "--out", str(out),
            "--only-fold", "0", "--epochs", "20", "--threads", "1", "--device", "cuda"]
    assert main(args) == 0
    fold = json.loads((out / "folds" / "fold_00.json").read_text())
    assert fold["device"] == "cuda"
    assert fold["history"][0]["tuplet"] > 0 and np.isfinite(fold["history"][-1]["ce"])
    assert fold["history"][-1]["ce"] < 0.5 * fold["history"][0]["ce"]   # it learned
    assert fold["accuracy"] >= 0.9                                       # the tiny set is easy
    # the device is not part of the configuration: the run goes on with the next fold on the CPU
    cpu_args = ["cpu" if a == "cuda" else a for a in args]
    cpu_args[cpu_args.index("--only-fold") + 1] = "1"
    assert main(cpu_args) == 0
    assert json.loads((out / "folds" / "fold_01.json").read_text())["device"] == "cpu"


@cuda
def test_fer_net_trained_on_cuda_predicts_like_its_cpu_copy(tiny, exact_cuda_math):  # noqa: F811
    from nfgan.fer.cv import load_config, normalise_all, predict_proba, train_fold
    from nfgan.fer.sampler import mine_tuplets

    data, _ = tiny
    ds = PreparedDataset(data)
    faces = normalise_all(np.asarray(ds.images))
    names = sorted(set(ds.column("expression")))
    labels = np.asarray([names.index(e) for e in ds.column("expression")])
    subjects = np.asarray([int(s[1:]) for s in ds.column("subject")])
    cfg = load_config(None, {"epochs": 3, "device": "cuda", "trunk": "mini_xception", "trunk_input": 96,
                             "rotate": 10, "scale": 0.1, "shift": 3})
    net, info = train_fold(cfg, "2b", faces, labels, subjects, len(names), seed=0)
    assert next(net.parameters()).is_cuda and np.isfinite(info["history"][-1]["ce"])
    cpu_net = copy.deepcopy(net).cpu()
    for tta in (False, True):
        np.testing.assert_allclose(predict_proba(net, faces, 60, tta=tta), predict_proba(cpu_net, faces, 60, tta=tta),
                                   atol=1e-4)
    # hard-negative mining picks the same tuplets from embeddings on either device
    emb = torch.nn.functional.normalize(torch.randn(24, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    lab, sub = labels[:24], subjects[:24]
    got = mine_tuplets(emb.cuda(), lab, sub, 2, 4)
    want = mine_tuplets(emb, lab, sub, 2, 4)
    assert [(p.tolist(), n.tolist()) for p, n in got] == [(p.tolist(), n.tolist()) for p, n in want]


@cuda
def test_fer_model_trained_on_cuda_loads_on_either_device(tiny, tmp_path, exact_cuda_math):  # noqa: F811
    from nfgan.fer.classifier import FERClassifier

    data, _ = tiny
    out = tmp_path / "model"
    assert main(["fer", "train", "--data", str(data), "--out", str(out), "--epochs", "20", "--threads", "1",
                 "--device", "cuda"]) == 0
    ds = PreparedDataset(data)
    faces = np.asarray(ds.images)
    on_cpu, on_gpu = FERClassifier(out), FERClassifier(out, device="cuda")
    p_cpu, p_gpu = on_cpu.predict_proba(faces), on_gpu.predict_proba(faces)
    np.testing.assert_allclose(p_cpu, p_gpu, atol=1e-4)
    assert np.mean(np.asarray(on_cpu.classes)[p_cpu.argmax(1)] == np.asarray(ds.column("expression"))) >= 0.9
    assert main(["fer", "predict", "--model", str(out), "--data", str(data), "--out", str(tmp_path / "p.csv"),
                 "--device", "cuda"]) == 0


@cuda
@pytest.mark.parametrize("bf16", [False, True])
def test_nfgan_trainer_on_cuda_resumes_and_its_checkpoint_normalises_on_the_cpu(tmp_path, bf16, exact_cuda_math):
    from nfgan.inference.normalizer import Normalizer
    from nfgan.training.loop import train

    prepared = make_prepared(tmp_path / "prepared")
    cfg = tiny_config(prepared, steps=4, device="cuda", bf16=bf16)
    train(dict(cfg, train={**cfg["train"], "steps": 2}), tmp_path / "run", progress=False, feature_nets=tiny_nets())
    summary = train(cfg, tmp_path / "run", resume=True, progress=False, feature_nets=tiny_nets())
    assert summary["step"] == 4
    recs = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2, 3, 4]
    assert all(np.isfinite(r[k]) for r in recs for k in ("feat", "id", "pixel", "sym", "gan_dec", "gan_dis"))
    faces = np.asarray(PreparedDataset(prepared).images[:5])
    a = Normalizer.from_checkpoint(tmp_path / "run").normalize(faces)
    b = Normalizer.from_checkpoint(tmp_path / "run", device="cuda").normalize(faces)
    assert a.shape == b.shape == faces.shape
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1   # uint8 rounding at most


@cuda
def test_pix2pix_trainer_on_cuda(tmp_path):
    from nfgan.training.loop import train

    prepared = make_prepared(tmp_path / "prepared", subjects=5)
    cfg = p2p_config(prepared, steps=3, device="cuda")
    assert train(cfg, tmp_path / "run", progress=False)["step"] == 3
    assert list((tmp_path / "run" / "samples").glob("*.png"))
