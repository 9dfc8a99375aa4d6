"""pix2pix baseline: network shapes, skip connections, config rules, a learning step, run folder + loading."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_prepared, p2p_config, tiny_nets
from nfgan.config import ConfigError
from nfgan.models import losses as L
from nfgan.models.pix2pix import Pix2PixModel
from nfgan.models.unet import PatchDiscriminator, UNetGenerator
from nfgan.training.config import load_config
from nfgan.training.loop import Trainer, train


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return make_prepared(tmp_path_factory.mktemp("p2p_prepared"), subjects=5)


def test_unet_and_patchgan_shapes():
    torch.manual_seed(0)
    g = UNetGenerator(64, ngf=8, max_channels=32).eval()
    x = torch.rand(3, 1, 64, 64) * 2 - 1
    y = g(x)
    assert y.shape == (3, 1, 64, 64)
    assert y.abs().max() <= 1.0
    # six stride-2 levels down to 1x1 for 64 px
    h = x
    for d in g.down:
        h = d(h)
    assert h.shape[-2:] == (1, 1)
    d = PatchDiscriminator(ndf=8)
    assert d(x, y).shape == (3, 1, 6, 6)
    with pytest.raises(ValueError, match="power-of-two"):
        UNetGenerator(48)


def test_unet_skip_connections_carry_detail():
    """Changing one input pixel changes the output at that pixel (the outermost skip), which a pure
    bottleneck would blur over the whole image."""
    torch.manual_seed(0)
    g = UNetGenerator(64, ngf=8, max_channels=32, dropout=0.0).eval()
    x = torch.zeros(1, 1, 64, 64)
    x2 = x.clone()
    x2[0, 0, 40, 20] = 1.0
    diff = (g(x2) - g(x)).abs()[0, 0]
    assert diff[38:43, 18:23].max() > 0
    assert diff[:10, 50:].max() < diff[38:43, 18:23].max()


def test_config_rules(tmp_path):
    cfg = load_config(overrides={"model": {"type": "pix2pix"}})
    assert cfg["loss"] == {"feat": 0.0, "id": 0.0, "pixel": 100.0, "sym": 0.0, "gan": 1.0, "neutral": 0.0,
                           "id_jitter": 0.0}
    assert cfg["model"]["type"] == "pix2pix" and cfg["model"]["ngf"] == 32
    assert cfg["feature_nets"] == {"perceptual": None, "identity": None}
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {type: pix2pix}\nloss: {id: 0.003}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: loss.id = 0.003 needs feature_nets.identity"):
        load_config(bad)
    ok = tmp_path / "lid.yaml"
    ok.write_text("model: {type: pix2pix}\nloss: {id: 0.2}\nfeature_nets: {identity: {type: dlib_identity}}\n")
    assert load_config(ok)["loss"]["id"] == 0.2
    bad.write_text("model: {type: stylegan}\n")
    with pytest.raises(ConfigError, match="model.type"):
        load_config(bad)
    bad.write_text("model: {ngf: 16}\n")              # a pix2pix key in an NFGAN config
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'model.ngf'"):
        load_config(bad)
    bad.write_text("model: {type: pix2pix}\noptim: {dec: {lr: 0.1}}\n")   # the U-Net's optimiser is optim.gen
    with pytest.raises(ConfigError, match=r"unknown key 'optim.dec'.*'gen'"):
        load_config(bad)


def test_training_steps_reduce_l1_on_a_fixed_batch(prepared):
    cfg = p2p_config(prepared)
    cfg["optim"]["gen"]["lr"] = 1e-3
    cfg["model"]["dropout"] = 0.0
    tr = Trainer(cfg)
    m = tr.model
    assert isinstance(m, Pix2PixModel)
    assert set(m.nets) == {"gen", "dis"} and set(m.optimizers) == {"gen", "dis"}
    assert m.features.perceptual is None and m.features.identity is None
    batch = tr.sample_batch()
    tr.sample_batch = lambda: batch
    x, y = batch.x, batch.y

    def l1_eval():
        m.nets["gen"].eval()
        with torch.no_grad():
            return float((m.nets["gen"](x) - y).abs().mean())

    before = l1_eval()
    dis_before = [p.detach().clone() for p in m.nets["dis"].parameters()]
    history = [tr.train_step() for _ in range(12)]
    after = l1_eval()
    vals = history[-1]
    assert list(vals) == ["pixel", "feat", "id", "sym", "gan_g", "gan_d", "neutral"]   # the U-Net's own loss names
    assert vals["feat"] == vals["id"] == vals["sym"] == 0.0
    assert np.isfinite(vals["gan_g"]) and np.isfinite(vals["gan_d"])
    # the training L1 (batch statistics) falls fast; the eval-mode L1 (running BN statistics) follows
    assert history[-1]["pixel"] < 0.6 * history[0]["pixel"], [h["pixel"] for h in history]
    assert after < before, (before, after)
    assert any(not torch.equal(a, b) for a, b in zip(dis_before, m.nets["dis"].parameters()))
    assert tr.step == 12


def test_run_folder_checkpoint_loads_in_evaluate(prepared, tmp_path):
    from nfgan.checkpoint import load_checkpoint
    from nfgan.inference import load_model

    cfg = p2p_config(prepared)
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary["step"] == 2
    ck = load_checkpoint(tmp_path / "run")
    assert set(ck["nets"]) == {"gen", "dis"} and ck["model"]["type"] == "pix2pix"
    assert load_config(tmp_path / "run" / "config.yaml") == cfg     # resumable from its own config
    g = load_model(tmp_path / "run")
    assert g.kind == "pix2pix"
    ref = Pix2PixModel.build_generator(cfg["model"])["gen"]
    ref.load_state_dict(ck["nets"]["gen"])
    ref.eval()
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(g(x), ref(x))
    # resume continues to a larger budget
    cfg2 = load_config(tmp_path / "run" / "config.yaml")
    cfg2["train"]["steps"] = 3
    assert train(cfg2, tmp_path / "run", resume=True, progress=False)["step"] == 3


def test_nfgan_train_cli_dispatches_on_model_type(prepared, tmp_path, capsys):
    import json

    import yaml

    from nfgan.checkpoint import load_checkpoint
    from nfgan.cli import main

    cfg = p2p_config(prepared, steps=1)
    path = tmp_path / "p2p.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(path), "--out", str(tmp_path), "--name", "r", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 1
    ck = load_checkpoint(tmp_path / "r")
    assert set(ck["nets"]) == {"gen", "dis"} and ck["model"]["type"] == "pix2pix"
    # and resumes as pix2pix from its own run folder
    assert main(["train", "--resume", str(tmp_path / "r"), "--steps", "2", "--quiet"]) == 0
    assert load_checkpoint(tmp_path / "r")["step"] == 2


def test_identity_loss_on_the_unet_generator(prepared):
    """pix2pix + NFGAN's L_id (configs/pix2pix_lid_frontalized.yaml): the loss is computed against the inputs'
    cached identity maps and reaches the generator's gradient, with its weight."""
    grads = {}
    for w in (0.0, 0.5):
        cfg = p2p_config(prepared)
        cfg["model"]["dropout"] = 0.0
        cfg["loss"]["id"] = w
        tr = Trainer(cfg, feature_nets={"identity": tiny_nets()["identity"]})
        m = tr.model
        assert (m.features.identity is not None) == (w > 0)
        torch.manual_seed(0)
        m.nets["gen"] = Pix2PixModel.build_generator(cfg["model"])["gen"]   # same initial generator for both
        batch = tr.sample_batch()
        losses = m.compute_losses(batch)
        if w == 0:
            assert float(losses["id"].detach()) == 0.0
        else:
            assert float(losses["id"].detach()) > 0
            x = batch.x
            with torch.no_grad():   # the plain definition: L1 between the id maps of G(x) and of x
                fake = m.nets["gen"](x)
                ref = L.identity_loss(m.features.identity(fake), m.features.identity(x))
            assert float(losses["id"].detach()) == pytest.approx(float(ref), rel=1e-4)
            gen_p = list(m.nets["gen"].parameters())
            g_id = torch.cat([g.flatten() for g in torch.autograd.grad(losses["id"], gen_p, retain_graph=True)])
        for net in m.nets.values():
            net.zero_grad(set_to_none=True)
        m.backward(losses)
        grads[w] = torch.cat([p.grad.flatten() for p in m.nets["gen"].parameters()])
    # the generator's gradient gains exactly w * grad(L_id)
    torch.testing.assert_close(grads[0.5] - grads[0.0], 0.5 * g_id, atol=1e-5, rtol=1e-3)


def test_neutrality_lever_pushes_outputs_towards_the_critics_neutral(tmp_path):
    """loss.neutral: -log p_neutral under the frozen human-models mini-Xception (not an evaluator). Trained on
    that loss alone the U-Net's outputs become neutral to the critic; with weight 0 no critic is loaded."""
    from conftest import make_prepared, p2p_config

    from nfgan.training.loop import Trainer

    root = make_prepared(tmp_path / "d", subjects=4)
    off = Trainer(p2p_config(root, batch_size=8))
    assert off.model.critic is None and off.train_step()["neutral"] == 0.0
    cfg = p2p_config(root, batch_size=8)
    cfg["loss"].update(neutral=1.0, pixel=0.0, gan=0.0)
    cfg["optim"]["gen"]["lr"] = 2e-3
    tr = Trainer(cfg)
    assert all(not p.requires_grad for p in tr.model.critic.parameters())
    first = tr.train_step()["neutral"]
    for _ in range(20):
        last = tr.train_step()["neutral"]
    assert first > 0.5 and last < first / 10, (first, last)
