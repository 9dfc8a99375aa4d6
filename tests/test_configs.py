"""Every shipped experiment config loads, and the comparison configs keep the equal-budget promise of
docs/evaluation.md (same data, split, batch, precision and optimiser as the NFGAN London run; 1000 steps)."""
from pathlib import Path

import pytest

from nfgan.pix2pix import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
COMPARED = ["ablation_no_lid", "ablation_no_lfeat", "baseline_autoencoder", "baseline_pix2pix", "nfgan_strong_lid"]


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_config_loads(path):
    cfg = load_config(path)
    assert cfg["train"]["steps"] > 0 and cfg["train"]["batch_size"] > 0


@pytest.mark.parametrize("name", COMPARED)
def test_compared_runs_share_the_london_budget(name):
    ref = load_config(CONFIGS / "nfgan_london.yaml")
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert cfg["train"]["steps"] == 1000 and ref["train"]["steps"] >= 1000
    assert ref["log"]["checkpoint_every"] and 1000 % ref["log"]["checkpoint_every"] == 0   # step 1000 is kept
    for key in ("batch_size", "bf16"):
        assert cfg["train"][key] == ref["train"][key], key
    for key in ("root", "splits", "flip_left_poses"):
        assert cfg["data"][key] == ref["data"][key], key
    if cfg["model"].get("type", "nfgan") == "nfgan":
        assert cfg["optim"] == ref["optim"]
