"""Every shipped experiment config loads, and the comparison configs keep the equal-budget promise of
docs/evaluation.md (same data, split, batch, precision and optimiser as the NFGAN London run; 1000 steps)."""
from pathlib import Path

import pytest

from nfgan.pix2pix import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
COMPARED = ["ablation_no_lid", "ablation_no_lfeat", "baseline_autoencoder", "baseline_pix2pix", "nfgan_strong_lid",
            "pix2pix_lid"]


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


FER_CONFIGS = sorted((CONFIGS / "fer").rglob("*.yaml"))


@pytest.mark.parametrize("path", FER_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fer_config_loads(path):
    from nfgan.fer.cv import load_config as load_fer_config   # refuses unknown options

    cfg = load_fer_config(path)
    assert cfg["epochs"] > 0 and cfg["crop"] <= 64


def test_fer_default_is_the_candidate_chosen_on_validation():
    """configs/fer/ckplus.yaml = candidate c16 plus r1's reference option (c5r1.yaml keeps the earlier c5 + r1);
    jaffe.yaml = j2 (docs/fer.md 'Model selection'); each candidate differs from its predecessor only in what
    the docs say."""
    from nfgan.fer.cv import load_config as load_fer_config

    sel = lambda name: load_fer_config(CONFIGS / "fer" / "selection" / f"{name}.yaml")  # noqa: E731
    drop = lambda c: {k: v for k, v in c.items() if k != "threads"}  # noqa: E731
    changed = lambda a, b: {k for k in a if a[k] != b[k]}  # noqa: E731
    chosen = load_fer_config(CONFIGS / "fer" / "ckplus.yaml")
    c0, c1, c5, c6, c7, c8, c9, c10, c13, c16, c17, c18, r1, c5r1, p1 = (sel(n) for n in (
        "c0", "c1", "c5", "c6", "c7", "c8", "c9", "c10", "c13", "c16", "c17", "c18", "r1", "c5r1", "p1"))
    assert drop(chosen) == {**drop(c16), "references_per_subject": 1}
    assert changed(c5, c13) == changed(c5, c16) == {"trunk_input"} and (c13["trunk_input"], c16["trunk_input"]) == (80, 96)
    assert drop(c5r1) == {**drop(c5), "references_per_subject": 1}
    assert changed(c5r1, p1) == {"references_as"} and p1["references_as"] == "input"
    assert chosen["trunk"] == "mini_xception"   # not faceapi112: its pretraining data may include CK+
    assert changed(c0, c1) == {"rotate", "scale", "shift", "tta"}
    assert changed(c1, c5) == {"trunk"}
    assert changed(c5, c6) == changed(c5, c7) == {"lr"}
    assert changed(c5, c8) == changed(c5, c9) == {"trunk"} and (c8["trunk"], c9["trunk"]) == ("faceapi", "faceapi112")
    assert changed(c5, c10) == {"ensemble"} and c10["ensemble"] == 2
    assert changed(c5, c17) == {"trunk", "trunk_input", "trunk_lr_scale"}
    assert (c17["trunk"], c17["trunk_input"], c17["trunk_lr_scale"]) == ("dlib_resnet", 112, 0.1)
    assert changed(c17, c18) == {"trunk_lr_scale"} and c18["trunk_lr_scale"] == 1.0
    assert changed(c1, r1) == {"references_per_subject"}
    jaffe = load_fer_config(CONFIGS / "fer" / "jaffe.yaml")
    j0, j2 = sel("j0"), sel("j2")
    assert drop(jaffe) == drop(j2) and changed(j0, j2) == {"trunk"}
