"""tools/average_models.py: weight averages of model files that agree on everything but their weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import load_script, make_prepared, p2p_config

from nfgan.inference import export_model, load_model
from nfgan.training.loop import train


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three tiny pix2pix runs on one generated set: seeds 0 and 1, and seed 0 with another input rule."""
    tmp = tmp_path_factory.mktemp("avg")
    root = make_prepared(tmp / "data", subjects=5)
    out = {}
    for name, seed, flip in (("a", 0, False), ("b", 1, False), ("other_rule", 0, True)):
        cfg = p2p_config(root, steps=2)
        cfg["seed"] = seed
        cfg["data"]["flip_left_poses"] = flip
        train(cfg, tmp / name, progress=False)
        out[name] = tmp / name
    cfg = p2p_config(root, steps=2)
    cfg["model"]["ngf"] = 4
    train(cfg, tmp / "narrow", progress=False)
    out["narrow"] = tmp / "narrow"
    return out


def test_average_is_the_weighted_mean_and_records_its_sources(runs, tmp_path):
    tool = load_script("tools/average_models.py")
    a, b = load_model(runs["a"]), load_model(runs["b"])
    sa, sb = a.nets.state_dict(), b.nets.state_dict()
    assert any(not torch.equal(sa[k], sb[k]) for k in sa if sa[k].is_floating_point())   # two different draws

    out = tmp_path / "soup.safetensors"
    assert tool.main([str(runs["a"]), str(runs["b"]), "--out", str(out), "--weights", "3", "1"]) == 0
    soup = load_model(out)
    ss = soup.nets.state_dict()
    for k, v in sa.items():
        if v.is_floating_point():
            expect = (0.75 * v.double() + 0.25 * sb[k].double()).float()
            assert torch.equal(ss[k], expect), k
        else:
            assert torch.equal(ss[k], v), k      # BatchNorm counters: the first model's
    assert [r["weight"] for r in soup.info["averaged_from"]] == [0.75, 0.25]
    assert [r["source"] for r in soup.info["averaged_from"]] == [str(runs["a"]), str(runs["b"])]
    assert soup.rule == a.rule
    assert soup.info["train_subjects"] == sorted(set(a.info["train_subjects"]) | set(b.info["train_subjects"]))

    # re-exported (e.g. with an inference step added, or by tools/export_default_model.py) it keeps its sources
    again = load_model(export_model(out, tmp_path / "again.safetensors"))
    assert again.info["averaged_from"] == soup.info["averaged_from"]
    assert all(torch.equal(p, q) for p, q in zip(again.state_dict().values(), soup.state_dict().values()))

    # the soup runs: its outputs lie between neither model's exactly (a network, not a blend of outputs)
    x = torch.linspace(-1, 1, 64 * 64).reshape(1, 1, 64, 64)
    ya, yb, ys = a(x), b(x), soup(x)
    assert ys.shape == ya.shape and torch.isfinite(ys).all()
    assert not torch.allclose(ys, 0.75 * ya + 0.25 * yb, atol=1e-6)


def test_a_model_averaged_with_itself_is_unchanged(runs, tmp_path):
    tool = load_script("tools/average_models.py")
    out = tmp_path / "same.safetensors"
    assert tool.main([str(runs["a"]), str(runs["a"]), "--out", str(out)]) == 0
    a, same = load_model(runs["a"]), load_model(out)
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (2, 1, 64, 64)).astype(np.float32))
    assert torch.equal(a(x), same(x))


@pytest.mark.parametrize("other, reason", [("other_rule", "another input rule"), ("narrow", "has shape")])
def test_models_that_differ_in_more_than_weights_are_refused(runs, tmp_path, capsys, other, reason):
    tool = load_script("tools/average_models.py")
    out = tmp_path / "bad.safetensors"
    with pytest.raises(SystemExit):
        tool.main([str(runs["a"]), str(runs[other]), "--out", str(out)])
    err = capsys.readouterr().err
    assert reason in err and str(runs[other]) in err
    assert not out.exists()


def test_bad_weights_are_refused(runs, tmp_path, capsys):
    tool = load_script("tools/average_models.py")
    for weights in (["1"], ["1", "-1"], ["0", "0"]):
        with pytest.raises(SystemExit):
            tool.main([str(runs["a"]), str(runs["b"]), "--out", str(tmp_path / "w.safetensors"), "--weights", *weights])
    with pytest.raises(SystemExit):
        tool.main([str(runs["a"]), "--out", str(tmp_path / "w.safetensors")])
    assert not (tmp_path / "w.safetensors").exists()
