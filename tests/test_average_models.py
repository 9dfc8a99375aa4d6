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


def test_the_export_tool_ships_an_average_with_the_union_of_its_training_data(tmp_path):
    """tools/export_default_model.py on a weight average: every source of every averaged run in training_data, their
    training people for the FER leak guard, the terms of the research-only (SFM) source in the licence."""
    import json

    a = make_prepared(tmp_path / "a", subjects=5, seed=1)
    b = make_prepared(tmp_path / "b", subjects=4, seed=2)
    runs = []
    for name, sources in (("plain", {"london": a}), ("turned", {"london": a, "london_turned": b})):
        cfg = p2p_config(a, steps=2)
        cfg["data"]["root"] = cfg["data"]["splits"] = None
        cfg["data"]["sources"] = {src: {"root": str(root), "splits": str(root / "splits.json"), "weight": None,
                                        "empty_border": "off"} for src, root in sources.items()}
        train(cfg, tmp_path / name, progress=False)
        runs.append(str(tmp_path / name))
    soup = tmp_path / "soup.safetensors"
    assert load_script("tools/average_models.py").main([*runs, "--out", str(soup)]) == 0
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"models": {}, "command": "nfgan evaluate ...",
                                   "identity_calibration": {"dlib": {"far_threshold": 0.5}}}))
    tool = load_script("tools/export_default_model.py")
    out = tmp_path / "pix2pix_soup.safetensors"
    assert tool.main([str(soup), "--metrics", str(metrics), "--calibration-only", "--out", str(out)]) == 0
    g = load_model(out)
    assert {d["source"] for d in g.info["training_data"]} == {"london", "london_turned"}
    assert "Surrey Face Model" in {d["source"]: d for d in g.info["training_data"]}["london_turned"]["license"]
    assert "non-commercial research use only" in g.info["license"]
    splits = [json.loads((r / "splits.json").read_text())["train"] for r in (a, b)]
    assert g.info["train_subjects"] == sorted(set(splits[0]) | set(splits[1]))
    assert [r["source"] for r in g.info["averaged_from"]] == runs and g.info["stored_dtype"] == "float16"
    x = torch.zeros(1, 1, 64, 64)
    assert (g(x) - load_model(soup)(x)).abs().max() < 1e-2      # float16 of the same weights

    # a run of the average that named one source differently is refused, naming the source
    rec = load_model(soup).info["averaged_from"]
    rec[1]["sources"]["london"] = {**rec[1]["sources"]["london"], "weight": 0.9}
    assert "differs" in str(pytest.raises(ValueError, tool._averaged_sources, rec).value)
