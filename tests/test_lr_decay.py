"""The linear learning-rate decay (train.lr_decay_from): the factor, the config check, the rates each optimizer
steps with, a run that does not decay before the decay starts, and resume continuing the schedule exactly."""
from __future__ import annotations

import pytest
import torch

from conftest import make_prepared, p2p_config
from nfgan.checkpoint import load_checkpoint
from nfgan.config import ConfigError
from nfgan.training.config import load_config
from nfgan.training.loop import Trainer, lr_factor, train


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return make_prepared(tmp_path_factory.mktemp("lr_decay_prepared"), subjects=5)


def test_the_factor_is_one_until_the_decay_then_falls_linearly():
    assert [lr_factor(s, None, 10) for s in range(10)] == [1.0] * 10
    assert [lr_factor(s, 6, 10) for s in range(10)] == [1.0] * 7 + [0.75, 0.5, 0.25]
    # a 500-step second stage decaying from its first step: full rate first, 1/500 of it last, never 0
    assert lr_factor(2000, 2000, 2500) == 1.0
    assert lr_factor(2250, 2000, 2500) == 0.5
    assert lr_factor(2499, 2000, 2500) == pytest.approx(1 / 500)


def test_config_default_is_constant_and_a_decay_past_the_end_is_refused(tmp_path):
    assert load_config()["train"]["lr_decay_from"] is None
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {steps: 2000, lr_decay_from: 2000}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: train.lr_decay_from \(2000\) must be below train.steps \(2000\)"):
        load_config(bad)
    bad.write_text("train: {lr_decay_from: -1}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*train.lr_decay_from"):
        load_config(bad)
    ok = tmp_path / "ok.yaml"
    ok.write_text("train: {steps: 2500, lr_decay_from: 2000}\n")
    assert load_config(ok)["train"]["lr_decay_from"] == 2000


def _rates(tr: Trainer) -> dict[str, list[float]]:
    return {n: [g["lr"] for g in o.param_groups] for n, o in tr.model.optimizers.items()}


def test_every_optimizer_steps_with_its_configured_rate_times_the_factor(prepared):
    cfg = p2p_config(prepared, steps=5, lr_decay_from=2)
    cfg["optim"]["dis"]["lr"] = 1e-3      # two different rates, each scaled
    tr = Trainer(cfg)
    seen = []
    for _ in range(5):
        tr.train_step()
        seen.append(_rates(tr))
    gen, dis = cfg["optim"]["gen"]["lr"], 1e-3
    for step, rates in enumerate(seen):
        f = [1.0, 1.0, 1.0, 2 / 3, 1 / 3][step]
        assert rates["gen"] == [pytest.approx(gen * f)] and rates["dis"] == [pytest.approx(dis * f)], step


def test_the_steps_before_the_decay_are_those_of_a_constant_rate_run(prepared):
    def states(cfg):     # one run at a time: the runs share torch's generator (dropout)
        tr, out = Trainer(cfg), []
        for _ in range(4):
            tr.train_step()
            out.append({k: v.clone() for k, v in tr.model.nets["gen"].state_dict().items()})
        return out

    const, decay = states(p2p_config(prepared, steps=4)), states(p2p_config(prepared, steps=4, lr_decay_from=2))
    assert all(torch.equal(const[2][k], decay[2][k]) for k in const[2])   # steps 1-3 at the full rate
    # the fourth step is taken at half the rate
    assert any(not torch.equal(const[3][k], decay[3][k]) for k in const[3] if const[3][k].is_floating_point())


def test_resume_continues_the_schedule_exactly(prepared, tmp_path):
    train(p2p_config(prepared, steps=4, lr_decay_from=1), tmp_path / "full", progress=False)
    train(p2p_config(prepared, steps=2, lr_decay_from=1), tmp_path / "resumed", progress=False)
    train(p2p_config(prepared, steps=4, lr_decay_from=1), tmp_path / "resumed", resume=True, progress=False)
    full, resumed = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "resumed")
    for name in ("gen", "dis"):
        for k, v in full["nets"][name].items():
            assert torch.equal(v, resumed["nets"][name][k]), (name, k)
    # the checkpoint's optimizer holds the last rate used; the resumed run did not keep it as its base rate
    assert full["optimizers"]["gen"]["param_groups"][0]["lr"] == pytest.approx(2e-4 / 3)
