"""nfgan's own identity net (the second L_id network): verification figures, training, its file, the feature-net
spec and the training tool."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import make_prepared
from nfgan.models.auxiliary.feature_nets import build_feature_net
from nfgan.models.auxiliary.identity_net import IdentityNet, IdentityNetError, fit, verification
from nfgan.weights import MissingWeightsError


def test_verification_figures_on_known_embeddings():
    # three people, two faces each, far apart: every genuine pair closer than every impostor pair
    emb = np.repeat(np.eye(3), 2, axis=0) + np.tile([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0]], (3, 1))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    v = verification(emb, ["a", "a", "b", "b", "c", "c"])
    assert v["eer"] == 0.0 and v["tar_at_far1"] == 1.0 and (v["genuine"], v["impostor"]) == (3, 12)
    # the labels shuffled so that each 'person' holds faces of two others: genuine pairs are now the far ones
    v = verification(emb, ["a", "b", "c", "a", "b", "c"])
    assert v["eer"] >= 0.5 and v["tar_at_far1"] == 0.0
    with pytest.raises(IdentityNetError, match="genuine and impostor"):
        verification(emb[:2], ["a", "b"])


def _people(n_people: int, per: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """uint8 64 x 64 'faces': each person a smooth random pattern, each face of them shifted and noisy."""
    rng = np.random.default_rng(seed)
    faces, people = [], []
    for p in range(n_people):
        coarse = torch.from_numpy(rng.normal(size=(1, 1, 6, 6)).astype(np.float32))
        base = torch.nn.functional.interpolate(coarse, size=(64, 64), mode="bicubic", align_corners=False)[0, 0].numpy()
        for k in range(per):
            img = np.roll(base, int(rng.integers(-2, 3)), axis=1) + rng.normal(0, 0.3, base.shape)
            faces.append(np.clip(128 + 40 * img, 0, 255).astype(np.uint8))
            people.append(f"p{seed}_{p}")
    return np.stack(faces), people


def test_fit_learns_and_keeps_the_epoch_that_best_separates_validation_people(tmp_path):
    x, people = _people(8, 8, seed=0)
    vx, vpeople = _people(4, 4, seed=1)
    net, history = fit(x, people, vx, vpeople, epochs=4, batch_size=16, width=8, embed_dim=16, seed=0)
    eers = [h["val_eer"] for h in history]
    assert net.info["epoch"] == 1 + int(np.argmin(eers)) and net.info["people"] == 8
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert not any(p.requires_grad for p in net.parameters())
    # the file holds the same net, read without unpickling anything
    path = net.save(tmp_path / "id.safetensors", sources=["test"])
    again = IdentityNet.load(path)
    faces = torch.rand(3, 1, 64, 64) * 2 - 1
    for a, b in zip(net(faces), again(faces)):
        torch.testing.assert_close(a, b)
    assert again.info["sources"] == ["test"] and again(faces)[1].norm(dim=1).allclose(torch.ones(3))
    with pytest.raises(IdentityNetError, match="validation people are also training people"):
        fit(x, people, x[:4], people[:4], epochs=1)


def test_identity_net_files_and_specs_fail_clearly(tmp_path):
    with pytest.raises(MissingWeightsError, match="no such identity net file"):
        IdentityNet.load(tmp_path / "none.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(IdentityNetError, match="bad.safetensors: not a readable safetensors file"):
        IdentityNet.load(bad)
    from nfgan.atomic import save_safetensors

    other = tmp_path / "other.safetensors"
    save_safetensors(other, {"w": torch.zeros(2)}, metadata={"x": "1"})
    with pytest.raises(IdentityNetError, match="not an identity net file"):
        IdentityNet.load(other)
    wrong = tmp_path / "wrong.safetensors"
    save_safetensors(wrong, {"w": torch.zeros(2)}, metadata={"nfgan_identity_net": json.dumps({"width": 4})})
    with pytest.raises(IdentityNetError, match="do not fit"):
        IdentityNet.load(wrong)
    good = IdentityNet(width=4, embed_dim=8).save(tmp_path / "good.safetensors")
    net = build_feature_net({"type": "nfgan_identity", "path": str(good)})
    assert isinstance(net, IdentityNet) and not net.training
    assert [tuple(m.shape) for m in net(torch.zeros(2, 1, 64, 64))] == [(2, 32), (2, 8)]
    with pytest.raises(ValueError, match="needs 'path'"):
        build_feature_net({"type": "nfgan_identity"})
    with pytest.raises(ValueError, match="unknown key"):
        build_feature_net({"type": "nfgan_identity", "path": str(good), "layer": 3})


def test_training_tool_writes_the_net_and_its_report(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import train_identity_net

    root = make_prepared(tmp_path / "d", subjects=6)
    splits = tmp_path / "splits.json"     # two validation people: their pairs choose the epoch
    splits.write_text(json.dumps({"train": ["S00", "S01", "S02", "S03"], "val": ["S04", "S05"], "test": []}))
    out, report = tmp_path / "net.safetensors", tmp_path / "report"
    assert train_identity_net.main([f"synth={root}:{splits}", "--out", str(out),
                                    "--report", str(report), "--epochs", "2"]) == 0
    net = IdentityNet.load(out)
    assert net.info["people"] == 4 and net.info["sources"][0]["faces"]["val"] > 0
    text = (report / "report.md").read_text()
    assert "| synth | all pairs |" in text and "| this net | dlib |" in text
    assert len(json.loads((report / "report.json").read_text())["history"]) == 2
    # a report on the trained net, with a set it never learned; --out and --net are exclusive
    other = make_prepared(tmp_path / "o", subjects=3, seed=5)
    assert train_identity_net.main([f"synth={root}:{splits}", "--net", str(out), "--report", str(tmp_path / "r2"),
                                    "--transfer", f"other={other}"]) == 0
    text = (tmp_path / "r2" / "report.md").read_text()
    assert "| other (every person, not learned) | all pairs | 18 | 3 |" in text
    assert not (tmp_path / "r2" / "report.json").exists()
    with pytest.raises(SystemExit):
        train_identity_net.main([f"synth={root}:{splits}", "--report", str(report)])
