"""The moving average of the generator's weights (train.ema_half_life): the update rule, checkpoints, resume,
a second stage started from a checkpoint without an average, and inference/export using the average."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_prepared, p2p_config
from nfgan.checkpoint import load_checkpoint
from nfgan.config import ConfigError
from nfgan.training.config import load_config
from nfgan.training.ema import WeightAverage, ema_decay
from nfgan.training.loop import Trainer, train


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return make_prepared(tmp_path_factory.mktemp("ema_prepared"), subjects=5)


def _cfg(prepared, half_life: float, steps: int = 2):
    cfg = p2p_config(prepared, steps=steps, ema_half_life=half_life)
    cfg["optim"]["gen"]["lr"] = 1e-2     # large steps, so the average and the live weights part clearly
    return cfg


def _state(net) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_decay_halves_a_steps_weight_in_half_life_steps():
    assert ema_decay(1) == 0.5
    assert math.isclose(ema_decay(100) ** 100, 0.5, rel_tol=1e-12)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="half_life must be > 0"):
            ema_decay(bad)


def test_config_refuses_a_negative_half_life(tmp_path):
    assert load_config()["train"]["ema_half_life"] == 0     # off unless asked for
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {ema_half_life: -5}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*train.ema_half_life"):
        load_config(bad)


def test_each_step_moves_the_average_towards_the_live_generator_only(prepared):
    tr = Trainer(_cfg(prepared, half_life=2.0))
    assert set(tr.ema.nets) == {"gen"}                   # the discriminator is not averaged
    b = ema_decay(2.0)
    avg0, live0 = _state(tr.ema.nets["gen"]), _state(tr.model.nets["gen"])
    assert all(torch.equal(avg0[k], live0[k]) for k in avg0)    # starts as a copy
    tr.train_step()
    avg1, live1 = _state(tr.ema.nets["gen"]), _state(tr.model.nets["gen"])
    floats = [k for k, v in avg1.items() if v.is_floating_point()]
    assert any("running_mean" in k for k in floats)       # BatchNorm statistics are averaged too
    moved = 0
    for k in floats:
        torch.testing.assert_close(avg1[k], b * avg0[k] + (1 - b) * live1[k], rtol=1e-6, atol=1e-7)
        moved += not torch.equal(live1[k], live0[k])
    assert moved > len(floats) // 2
    counters = [k for k, v in avg1.items() if not v.is_floating_point()]
    assert counters and all(torch.equal(avg1[k], live1[k]) for k in counters)
    # the average is not the live generator, and its gradients are off
    assert any(not torch.equal(avg1[k], live1[k]) for k in floats)
    assert not any(p.requires_grad for p in tr.ema.nets["gen"].parameters())


def test_checkpoints_keep_the_average_and_resume_continues_it_exactly(prepared, tmp_path):
    train(_cfg(prepared, 3.0, steps=4), tmp_path / "full", progress=False)
    train(_cfg(prepared, 3.0, steps=2), tmp_path / "resumed", progress=False)
    train(_cfg(prepared, 3.0, steps=4), tmp_path / "resumed", resume=True, progress=False)
    full, resumed = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "resumed")
    assert set(full["nets"]) == {"gen", "dis", "ema_gen"} and full["extra"]["ema_since"] == 0
    for name in ("gen", "ema_gen"):
        for k, v in full["nets"][name].items():
            assert torch.equal(v, resumed["nets"][name][k]), (name, k)
    assert resumed["extra"]["ema_since"] == 0


def test_a_second_stage_starts_its_average_from_the_weights_it_resumes_from(prepared, tmp_path):
    run = tmp_path / "run"
    train(_cfg(prepared, 0.0, steps=2), run, progress=False)      # first stage: no average
    first = load_checkpoint(run)
    assert "ema_gen" not in first["nets"] and "ema_since" not in first["extra"]
    train(_cfg(prepared, 4.0, steps=3), run, resume=True, progress=False)
    second = load_checkpoint(run)
    assert second["step"] == 3 and second["extra"]["ema_since"] == 2
    b = ema_decay(4.0)
    for k, v in second["nets"]["ema_gen"].items():
        if v.is_floating_point():
            torch.testing.assert_close(v, b * first["nets"]["gen"][k] + (1 - b) * second["nets"]["gen"][k],
                                       rtol=1e-6, atol=1e-7)


def test_inference_and_export_use_the_average(prepared, tmp_path):
    from nfgan.inference import load_model
    from nfgan.inference.generator import export_model
    from nfgan.models.pix2pix import Pix2PixModel

    cfg = _cfg(prepared, 2.0, steps=3)
    train(cfg, tmp_path / "run", progress=False)
    ck = load_checkpoint(tmp_path / "run")
    g = load_model(tmp_path / "run")
    assert g.info["weights"] == "ema" and g.info["ema_since"] == 0
    ema_ref, live_ref = (Pix2PixModel.build_generator(cfg["model"])["gen"] for _ in range(2))
    ema_ref.load_state_dict(ck["nets"]["ema_gen"])
    live_ref.load_state_dict(ck["nets"]["gen"])
    x = torch.rand(3, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        out = g(x)
        assert torch.equal(out, ema_ref.eval()(x))
        assert (out - live_ref.eval()(x)).abs().max() > 1e-3
    exported = export_model(tmp_path / "run", tmp_path / "model.safetensors")
    g2 = load_model(exported)
    assert g2.info["weights"] == "ema"
    with torch.no_grad():
        assert torch.equal(g2(x), out)
    # a run without the average gives its live weights
    train(_cfg(prepared, 0.0, steps=1), tmp_path / "plain", progress=False)
    assert load_model(tmp_path / "plain").info["weights"] == "live"


def _live_and_average(cfg: dict, run) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random inputs and the outputs of a pix2pix run's live generator (built from its checkpoint) and of the
    average ``load_model`` gives."""
    from nfgan.inference import load_model
    from nfgan.models.pix2pix import Pix2PixModel

    live = Pix2PixModel.build_generator(cfg["model"])["gen"]
    live.load_state_dict(load_checkpoint(run)["nets"]["gen"])
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        return x, live.eval()(x), load_model(run)(x)


def test_a_checkpoints_live_weights_can_be_chosen_by_argument_or_path(prepared, tmp_path):
    from nfgan.checkpoint import CheckpointError
    from nfgan.evaluation.evaluate import parse_run_spec
    from nfgan.inference import load_model
    from nfgan.inference.export import model_stem
    from nfgan.inference.generator import export_model, split_weights

    cfg = _cfg(prepared, 2.0, steps=3)
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    ck = load_checkpoint(run)
    x, want_live, want_ema = _live_and_average(cfg, run)
    assert (want_live - want_ema).abs().max() > 1e-3
    with torch.no_grad():
        for g in (load_model(run, weights="live"), load_model(f"{run}#live"), load_model(f"{ck['path']}#live")):
            assert g.info["weights"] == "live" and torch.equal(g(x), want_live)
        assert torch.equal(load_model(f"{run}#ema")(x), want_ema)
        # exporting the live weights, then reading them back
        out = export_model(f"{run}#live", tmp_path / "live.safetensors")
        g = load_model(out)
        assert g.info["weights"] == "live" and torch.equal(g(x), want_live)
        assert load_model(out, weights="live").info["weights"] == "live"
    with pytest.raises(CheckpointError, match=r"live.safetensors.*'live' ones, not 'ema'"):
        load_model(f"{out}#ema")
    train(_cfg(prepared, 0.0, steps=1), tmp_path / "plain", progress=False)
    with pytest.raises(CheckpointError, match=r"plain.*no moving average"):
        load_model(tmp_path / "plain", weights="ema")
    with pytest.raises(ValueError, match="weights must be one of auto, ema, live"):
        load_model(run, weights="newest")
    with pytest.raises(ValueError, match="asks for the 'live' weights and for 'ema'"):
        load_model(f"{run}#live", weights="ema")
    # names in tables and exported graphs keep the choice; a file really named ...#live stays a file
    assert parse_run_spec(f"{run}#live") == ("run#live", Path(f"{run}#live"))
    assert parse_run_spec(f"{ck['path']}#ema") == (f"run@{ck['path'].stem}#ema", Path(f"{ck['path']}#ema"))
    assert model_stem(Path(f"{run}#live")) == "run_live"
    odd = tmp_path / "odd#live"
    odd.write_bytes(b"")
    assert split_weights(odd) == (odd, "auto")
    assert split_weights(tmp_path / "x#newest") == (tmp_path / "x#newest", "auto")


def test_sample_grids_show_the_average_beside_the_live_output(prepared):
    plain = Trainer(_cfg(prepared, 0.0)).sample_grid()
    tr = Trainer(_cfg(prepared, 2.0))
    tr.train_step()
    g = tr.sample_grid()
    assert g.shape[0] == plain.shape[0] and g.shape[1] == plain.shape[1] + 66     # one more 64 px column
    live_col, ema_col = g[2:66, 68:132], g[2:66, 134:198]
    assert not np.array_equal(live_col, ema_col)


def test_weight_average_restart_and_load(prepared):
    tr = Trainer(_cfg(prepared, 0.0))
    wa = WeightAverage({"gen": tr.model.nets["gen"]}, half_life=1.0)
    tr.train_step()
    wa.update()
    saved = {"gen": _state(wa.nets["gen"])}
    wa.restart(since=7)
    assert wa.since == 7
    assert all(torch.equal(v, tr.model.nets["gen"].state_dict()[k]) for k, v in wa.nets["gen"].state_dict().items())
    wa.load(saved, since=1)
    assert wa.since == 1 and all(torch.equal(v, saved["gen"][k]) for k, v in wa.nets["gen"].state_dict().items())


def test_the_export_tool_ships_a_multi_source_runs_live_or_averaged_weights(tmp_path):
    """tools/export_default_model.py with RUN#live: the file holds the live generator and the run's metadata
    (sources, licence, training subjects from the run's checkpoint); RUN alone ships the average."""
    import json

    from conftest import load_script, make_prepared
    from nfgan.inference import load_model

    a = make_prepared(tmp_path / "a", subjects=5, seed=1)
    b = make_prepared(tmp_path / "b", subjects=4, seed=2)
    cfg = _cfg(a, 2.0, steps=3)
    cfg["data"]["root"] = cfg["data"]["splits"] = None
    cfg["data"]["sources"] = {
        "london": {"root": str(a), "splits": str(a / "splits.json"), "weight": None, "empty_border": "off"},
        "canada": {"root": str(b), "splits": str(b / "splits.json"), "weight": None, "empty_border": "off"}}
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"models": {}, "command": "nfgan evaluate ...",
                                   "identity_calibration": {"dlib": {"far_threshold": 0.5}}}))
    tool = load_script("tools/export_default_model.py")
    for weights in ("live", "auto"):
        out = tmp_path / f"pix2pix_{weights}.safetensors"
        spec = f"{run}#live" if weights == "live" else str(run)
        assert tool.main([spec, "--metrics", str(metrics), "--calibration-only", "--out", str(out)]) == 0
        g = load_model(out)
        assert g.info["weights"] == ("live" if weights == "live" else "ema")
        assert g.info["source_run"] == spec and "CC BY 4.0 data only" in g.info["license"]
        assert {d["source"] for d in g.info["training_data"]} == {"london", "canada"}
        assert g.info["train_subjects"] == sorted(set(json.loads((a / "splits.json").read_text())["train"])
                                                  | set(json.loads((b / "splits.json").read_text())["train"]))
    x, want_live, want_ema = _live_and_average(cfg, run)
    with torch.no_grad():
        got_live = load_model(tmp_path / "pix2pix_live.safetensors")(x)
        got_ema = load_model(tmp_path / "pix2pix_auto.safetensors")(x)
    apart = (want_live - want_ema).abs().max()
    assert apart > 1e-2                                        # float16 files: each within a tenth of that
    assert (got_live - want_live).abs().max() < apart / 10 and (got_ema - want_ema).abs().max() < apart / 10


    # the shipped file written again with geometric neutralisation at inference: its weights, data and licence
    # kept, the rule and the evaluation replaced, the map embedded and the people it was fit on added to the
    # training subjects (the FER leak guard's list)
    from nfgan.data.neutral_shape import framing_shift, neutralize_batch, shipped

    src = tmp_path / "pix2pix_live.safetensors"
    before = load_model(src)
    assert not before.rule.neutralize
    with pytest.raises(SystemExit):
        tool.main([str(src), "--metrics", str(metrics), "--calibration-only", "--out", str(src),
                   "--neutralize-threshold", "0.01"])
    assert tool.main([str(src), "--metrics", str(metrics), "--calibration-only", "--out", str(src),
                      "--neutralize-mode", "warp_frame", "--neutralize-threshold", "0.01"]) == 0
    after = load_model(src)
    assert (after.rule.neutralize, after.rule.mode, after.rule.threshold) == (True, "warp_frame", 0.01)
    assert after.rule.flip_left_poses == before.rule.flip_left_poses and after.info["stored_dtype"] == "float16"
    for k in ("training_data", "license", "source_run", "weights", "step"):
        assert after.info[k] == before.info[k], k
    from nfgan.data.generator_input import fit_subjects

    assert after.info["train_subjects"] == sorted(set(before.info["train_subjects"]) | fit_subjects(shipped()))
    assert len(after.info["train_subjects"]) > len(before.info["train_subjects"]) + 100
    assert after.info["reexported_from"] == str(src) and after.info["input_rule"]["neutral_shape"]
    assert all(torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()))
    # frontal faces: one framed as a neutral face, one framed 10 % smaller (as alignment frames a surprised face)
    from nfgan.data.align import apply_transform
    from nfgan.data.frontalize import FRONTAL68

    lm0 = FRONTAL68 * 63.0
    lm = np.stack([lm0, apply_transform(np.array([[0.9, 0, 3.15], [0, 0.9, 3.15]]), lm0)])
    assert framing_shift(lm[0], 64, shipped()) < 0.01 < framing_shift(lm[1], 64, shipped())
    faces = np.random.default_rng(0).integers(0, 256, (2, 64, 64), dtype=np.uint8)
    x = after.generator_inputs(faces, ["frontal"] * 2, ["0"] * 2, lm)
    assert np.array_equal(x[0], faces[0]) and not np.array_equal(x[1], faces[1])
    assert np.array_equal(x, neutralize_batch(faces, lm, shipped(), "warp_frame", 0.01))
    assert np.array_equal(before.generator_inputs(faces, ["frontal"] * 2, ["0"] * 2, lm), faces)
