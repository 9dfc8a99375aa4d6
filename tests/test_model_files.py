"""Broken and tampered model files: every load validates the file before building anything and names the file
and the problem; `nfgan normalize --model` answers with an error line and exit status 2 (nothing could run), never a traceback."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from nfgan.checkpoint import EXPORT_FORMAT, EXPORT_KEY, CheckpointError, save_checkpoint
from nfgan.cli import main
from nfgan.inference import load_model
from nfgan.models.nfgan import NFGANModel
from nfgan.models.pix2pix import Pix2PixModel

MODEL = {"type": "nfgan", "latent_dim": 256, "image_size": 64}


def exported(nets: dict, info: dict) -> tuple[dict, dict]:
    tensors = {f"{n}/{k}": v.contiguous() for n, net in nets.items() for k, v in net.state_dict().items()}
    return tensors, {EXPORT_KEY: json.dumps({"format": EXPORT_FORMAT, "kind": "nfgan", "model": MODEL, **info})}


def _good() -> tuple[dict, dict]:
    torch.manual_seed(0)
    return exported(NFGANModel.build_generator(MODEL), {})


def _edit_info(**change):
    def f(tensors, meta):
        info = json.loads(meta[EXPORT_KEY])
        info.update(change)
        return tensors, {EXPORT_KEY: json.dumps(info)}
    return f


def _edit_tensor(fn):
    def f(tensors, meta):
        tensors = dict(tensors)
        fn(tensors)
        return tensors, meta
    return f


def _set(key, value):
    def fn(t):
        t[key] = value(t[key]) if callable(value) else value
    return fn


ENC_W = "enc/convs.0.0.weight"

# name -> (how the good export is changed, what the error says)
TAMPERED = {
    "no nfgan metadata": (lambda t, m: (t, {}), "without nfgan metadata"),
    "metadata not JSON": (lambda t, m: (t, {EXPORT_KEY: "{kind: nfgan"}), "not valid JSON"),
    "metadata a list": (lambda t, m: (t, {EXPORT_KEY: "[1, 2]"}), "must be a JSON object"),
    "other format": (_edit_info(format=99), "exported model format 99"),
    "kind missing": (_edit_info(kind=None), "needs 'kind'"),
    "unknown kind": (_edit_info(kind="stylegan"), "model.type must be one of"),
    "model not a mapping": (_edit_info(model="big"), "needs 'kind'"),
    "lying latent_dim": (_edit_info(model={**MODEL, "latent_dim": 10**12}), "model.latent_dim: must be <= 65536"),
    "latent_dim of another net": (_edit_info(model={**MODEL, "latent_dim": 128}), "latent_dim must be 256"),
    "latent_dim a string": (_edit_info(model={**MODEL, "latent_dim": "many"}), "model.latent_dim: expected a whole"),
    "image size not 64": (_edit_info(model={**MODEL, "image_size": 48}), "model.image_size: must be one of"),
    "pix2pix kind on NFGAN weights": (_edit_info(kind="pix2pix"), "has no 'gen' network"),
    "a tensor missing": (_edit_tensor(lambda t: t.pop(ENC_W)), "missing ['convs.0.0.weight']"),
    "an extra tensor": (_edit_tensor(_set("enc/extra.weight", torch.zeros(3))), "unexpected ['extra.weight']"),
    "a tensor without net": (_edit_tensor(_set("loose", torch.zeros(3))), "unexpected tensor 'loose'"),
    "a wrong shape": (_edit_tensor(_set(ENC_W, lambda v: v[:, :, :2].contiguous())), "has shape"),
    "NaN weights": (_edit_tensor(_set(ENC_W, lambda v: torch.full_like(v, math.nan))), "NaN or infinite"),
    "infinite weights": (_edit_tensor(_set(ENC_W, lambda v: torch.full_like(v, math.inf))), "NaN or infinite"),
    "integer weights": (_edit_tensor(_set(ENC_W, lambda v: torch.zeros(v.shape, dtype=torch.int32))), "expected floats"),
}


def _write(path: Path, tensors: dict, meta: dict) -> Path:
    save_file(tensors, str(path), metadata=meta)
    return path


@pytest.fixture(scope="module")
def face(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("face") / "face.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(path)
    return path


def _cli_refuses(model: Path, face: Path, out: Path, capsys) -> str:
    rc = main(["normalize", "--model", str(model), str(face), "-o", str(out), "--align", "never"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and str(model) in err, (rc, err)
    assert not out.exists()
    return err


def test_the_untampered_export_loads(tmp_path, face, capsys):
    path = _write(tmp_path / "good.safetensors", *_good())
    assert load_model(path).kind == "nfgan"
    assert main(["normalize", "--model", str(path), str(face), "-o", str(tmp_path / "o"), "--align", "never"]) == 0


@pytest.mark.parametrize("name", sorted(TAMPERED))
def test_tampered_exports_are_refused_with_file_and_reason(name, tmp_path, face, capsys):
    change, reason = TAMPERED[name]
    path = _write(tmp_path / "m.safetensors", *change(*_good()))
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    assert str(path) in str(err.value) and reason in str(err.value), str(err.value)
    assert reason in _cli_refuses(path, face, tmp_path / "out", capsys)


def test_damaged_files_and_paths(tmp_path, face, capsys):
    good = _write(tmp_path / "good.safetensors", *_good())
    blob = good.read_bytes()
    cases = {"truncated.safetensors": blob[: len(blob) // 2], "empty.safetensors": b"",
             "noise.safetensors": np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
             "header.safetensors": (200).to_bytes(8, "little") + b"{not json" + b" " * 191}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match="not a readable safetensors file"):
            load_model(path)
        _cli_refuses(path, face, tmp_path / "out", capsys)
    with pytest.raises(CheckpointError, match="no such run folder"):
        load_model(tmp_path / "missing.safetensors")
    (tmp_path / "run").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoints/step_"):
        load_model(tmp_path / "run")
    import os

    os.mkfifo(tmp_path / "fifo.safetensors")    # refused at once, never opened (it would block)
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_model(tmp_path / "fifo.safetensors")


def test_tampered_training_checkpoints(tmp_path):
    torch.manual_seed(0)
    nets = Pix2PixModel.build_generator({"ngf": 8, "max_channels": 32})
    model = {"type": "pix2pix", "ngf": 8, "max_channels": 32}
    good = save_checkpoint(tmp_path / "good.safetensors", 3, nets, model=model, extra={"config": {}})
    assert load_model(good).kind == "pix2pix"
    from safetensors import safe_open

    with safe_open(str(good), framework="pt") as f:
        meta = json.loads(f.metadata()["nfgan"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    for change, reason in [({"step": "three"}, "'step' must be int"), ({"param_groups": []}, "'param_groups' must be dict"),
                           ({"model": {**model, "ngf": -4}}, "model.ngf: must be >= 1"),
                           ({"extra": {"config": [1]}}, "recorded config must be a mapping"),
                           ({"format": 7}, "checkpoint format 7")]:
        path = _write(tmp_path / "bad.safetensors", tensors, {"nfgan": json.dumps({**meta, **change})})
        with pytest.raises(CheckpointError, match=reason):
            load_model(path)
    path = _write(tmp_path / "bad.safetensors", {**tensors, "opt/gen/x/exp_avg": torch.zeros(1)}, {"nfgan": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="unexpected tensor 'opt/gen/x/exp_avg'"):
        load_model(path)


def test_fer_augmentation_from_a_damaged_model_is_an_error_line(tiny, tmp_path, capsys):
    data, folds = tiny
    tensors, meta = TAMPERED["NaN weights"][0](*_good())
    bad = _write(tmp_path / "nf.safetensors", *_edit_info(train_subjects=["L001"])(tensors, meta))   # no leak
    rc = main(["fer", "cv", "--data", str(data), "--folds", str(folds), "--variant", "2b_aug", "--augment", str(bad),
               "--only-fold", "0", "--epochs", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 1 and "NaN or infinite" in err and str(bad) in err and "Traceback" not in err
