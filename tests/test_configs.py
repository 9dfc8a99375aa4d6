"""Configs: every shipped config loads, the compared runs keep the equal-budget promise, and the one config
loader (nfgan.config) checks types and ranges, resolves paths against the config file, layers base: files and
--set overrides, and names the file and key in every error."""
from pathlib import Path

import pytest
import yaml

from nfgan.config import ConfigError, parse_set
from nfgan.fer.cv import FERConfigError
from nfgan.fer.cv import load_config as load_fer_config
from nfgan.training.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
COMPARED = ["ablation_no_lid", "ablation_no_lfeat", "baseline_autoencoder", "baseline_pix2pix"]


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_config_loads(path):
    cfg = load_config(path)
    assert cfg["train"]["steps"] > 0 and cfg["train"]["batch_size"] > 0
    # data paths are relative to the config file (configs/ -> the repository's out/); the split is the one
    # nfgan ships, by name
    from nfgan.data.pairs import load_splits

    sources = cfg["data"]["sources"] or {"data": {"root": cfg["data"]["root"], "splits": cfg["data"]["splits"]}}
    for name, src in sources.items():
        assert Path(src["root"]).parent == CONFIGS.parent / "out", name
        assert load_splits(src["splits"])["test"], name          # a shipped split, found by name
    if not cfg["data"]["sources"]:
        assert Path(cfg["data"]["root"]) == CONFIGS.parent / "out" / "london64"
        assert cfg["data"]["splits"] == "london"


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
    if cfg["model"]["type"] == "nfgan":
        assert cfg["optim"] == ref["optim"]


@pytest.mark.parametrize("path", sorted((CONFIGS / "fer").rglob("*.yaml")), ids=lambda p: p.stem)
def test_fer_config_loads(path):
    cfg = load_fer_config(path)   # refuses unknown options
    assert cfg["epochs"] > 0 and cfg["crop"] <= 64


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_values_are_typed_and_range_checked_with_file_and_key(tmp_path):
    # YAML 1.1 reads 2e-3 as a string: the loader makes it the number it means
    cfg = load_config(_write(tmp_path / "a.yaml", "optim: {enc: {lr: 2e-3}}\ntrain: {bf16: true}\n"))
    assert cfg["optim"]["enc"]["lr"] == 0.002 and cfg["train"]["bf16"] is True
    for text, match in [
        ("train: {bf16: maybe}\n", r"bad.yaml: train.bf16: expected true or false"),
        ("train: {batch_size: 0}\n", r"bad.yaml: train.batch_size: must be >= 1"),
        ("train: {batch_size: -3}\n", r"train.batch_size: must be >= 1"),
        ("train: {steps: 2.5}\n", r"train.steps: expected a whole number"),
        ("train: {threads: -1}\n", r"train.threads: must be >= 1"),
        ("log: {checkpoint_every: 0}\n", r"log.checkpoint_every: must be >= 1"),
        ("optim: {enc: {betas: 0.5}}\n", r"optim.enc.betas: expected a list"),
        ("optim: {enc: {betas: [0.5, 2.0]}}\n", r"optim.enc.betas\[1\]: must be <= 1"),
        ("optim: {enc: {lr: 0}}\n", r"optim.enc.lr: must be > 0"),
        ("optim: {enc: {lr: .nan}}\n", r"optim.enc.lr: expected a finite number"),
        ("loss: {id: -1}\n", r"loss.id: must be >= 0"),
        ("loss: {pixle: 0.1}\n", r"bad.yaml: unknown key 'loss.pixle'"),
        ("model: {latent_dim: 100000000000}\n", r"model.latent_dim: must be <= 65536"),
        ("model: {type: stylegan}\n", r"model.type must be one of"),
        ("name: ../../x\n", r"name: must be one path component"),
        ("data: {target_pose: upside_down}\n", r"data.target_pose: must be one of"),
        ("feature_nets: {identity: {factory: 'subprocess:run'}}\n", None),
        ("- a list\n", r"bad.yaml: the top level must be a mapping"),
        ("a: &x [1, 2]\nb: *x\n", r"bad.yaml: YAML aliases are not allowed"),
    ]:
        bad = _write(tmp_path / "bad.yaml", text)
        if match is None:   # no code named by a config: a factory key is not a feature net type
            from nfgan.models.auxiliary.feature_nets import build_feature_net

            spec = load_config(bad)["feature_nets"]["identity"]
            with pytest.raises(ValueError, match="feature net spec must be a mapping with a 'type'"):
                build_feature_net(spec)
            continue
        with pytest.raises(ConfigError, match=match):
            load_config(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_base_files_set_overrides_and_relative_paths(tmp_path):
    _write(tmp_path / "shared" / "base.yaml",
                  "name: base\ndata: {root: data/faces, splits: splits.json}\ntrain: {steps: 100, batch_size: 8}\n")
    child = _write(tmp_path / "exp" / "child.yaml", "base: ../shared/base.yaml\nname: child\ntrain: {steps: 50}\n")
    cfg = load_config(child)
    assert cfg["name"] == "child" and cfg["train"]["steps"] == 50 and cfg["train"]["batch_size"] == 8
    # a path is relative to the file that names it (the base file here), and stored absolute
    assert cfg["data"]["root"] == str((tmp_path / "shared" / "data" / "faces").resolve())
    assert cfg["data"]["splits"] == str((tmp_path / "shared" / "splits.json").resolve())
    # --set wins over the file; dotted keys, YAML values; its paths are relative to the working directory
    cfg = load_config(child, sets=["train.steps=7", "optim.enc.betas=[0.9, 0.99]", "data.root=here"])
    assert cfg["train"]["steps"] == 7 and cfg["optim"]["enc"]["betas"] == [0.9, 0.99]
    assert cfg["data"]["root"] == str((Path.cwd() / "here").resolve())
    with pytest.raises(ConfigError, match=r"--set: unknown key 'train.stpes'"):
        load_config(child, sets=["train.stpes=7"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_set(["train.steps"])
    # a saved (resolved) config loads back to itself from anywhere: absolute paths stay as they are
    saved = _write(tmp_path / "elsewhere" / "config.yaml", yaml.safe_dump(cfg))
    assert load_config(saved) == cfg
    _write(tmp_path / "loop" / "a.yaml", "base: b.yaml\n")
    _write(tmp_path / "loop" / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "loop" / "a.yaml")


def test_model_type_picks_the_schema_in_one_place(tmp_path):
    p2p = load_config(_write(tmp_path / "p.yaml", "model: {type: pix2pix}\n"))
    assert p2p["loss"] == {"feat": 0.0, "id": 0.0, "id2": 0.0, "id_rank": 0.0, "pixel": 100.0, "sym": 0.0, "gan": 1.0, "neutral": 0.0,
                           "code": 0.0, "code_max_size": 4, "id_jitter": 0.0, "id_reference": "input",
                           "neutral_critics": ["minixception"]}
    assert set(p2p["optim"]) == {"gen", "dis"} and p2p["feature_nets"] == {"perceptual": None, "identity": None,
                                                                     "identity2": None}
    nf = load_config()
    assert nf["model"]["type"] == "nfgan" and set(nf["optim"]) == {"enc", "dec", "dis"}
    assert nf["feature_nets"]["identity"] == {"type": "dlib_identity"}


def test_fer_options_go_through_the_same_loader(tmp_path):
    cfg = load_fer_config(_write(tmp_path / "f.yaml", "lr: 1e-3\nrotate: 10\nextra_data: [more/set]\n"),
                          overrides={"epochs": 3, "seed": None}, sets=["tta=true"])
    assert cfg["lr"] == 0.001 and cfg["epochs"] == 3 and cfg["seed"] == 0 and cfg["tta"] is True
    assert cfg["rotate"] == 10 and isinstance(cfg["rotate"], int)   # whole numbers stay as written (run hashes)
    assert cfg["extra_data"] == [str((tmp_path / "more" / "set").resolve())]
    for text, match in [("epochs: 0\n", r"bad.yaml: epochs: must be >= 1"),
                        ("trunk: resnet9000\n", r"trunk: must be one of"),
                        ("classes: 7\n", r"classes: must be 'auto' or a list"),
                        ("lerning_rate: 0.1\n", r"unknown key 'lerning_rate'")]:
        with pytest.raises(FERConfigError, match=match):
            load_fer_config(_write(tmp_path / "bad.yaml", text))


def test_split_and_fold_files_by_name_or_path(tmp_path, capsys):
    """The split and fold files nfgan ships are found by name from anywhere (a wheel has no configs/ folder);
    `nfgan splits` makes one for any prepared set, and evaluate finds it beside the data."""
    from conftest import make_prepared
    from nfgan.cli import main
    from nfgan.data.pairs import SplitError, load_splits
    from nfgan.evaluation.evaluate import default_splits
    from nfgan.fer.folds import FoldFileError, load_folds

    assert len(load_splits("london")["test"]) == 22 and len(load_folds("jaffe_loso")) == 10
    with pytest.raises(SplitError, match="nfgan ships none of that name .*shipped: .*london"):
        load_splits("lundon")
    with pytest.raises(FoldFileError, match="shipped: ckplus_peak_10fold, ckplus_peak_8fold, jaffe_loso"):
        load_folds("ckplus")
    root = make_prepared(tmp_path / "p", subjects=10)
    (root / "splits.json").unlink()
    with pytest.raises(ValueError, match="no split file: give --splits FILE, or make one with `nfgan splits"):
        default_splits(root)
    assert main(["splits", str(root), "--counts", "6", "2", "2"]) == 0
    sp = load_splits(root / "splits.json")
    assert [len(sp[k]) for k in ("train", "val", "test")] == [6, 2, 2] and default_splits(root) == root / "splits.json"
    assert main(["splits", str(root)]) == 2 and "exists" in capsys.readouterr().err     # never overwritten silently
    assert main(["splits", str(root), "--counts", "6", "2", "9", "--force"]) == 2           # do not add up
    assert load_splits(root / "splits.json") == sp
