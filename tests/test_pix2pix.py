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
    assert cfg["loss"] == {"feat": 0.0, "id": 0.0, "id2": 0.0, "id_rank": 0.0, "pixel": 100.0, "sym": 0.0, "gan": 1.0, "neutral": 0.0,
                           "code": 0.0, "code_max_size": 4, "id_jitter": 0.0, "id_reference": "input",
                           "neutral_critics": ["minixception"]}
    assert cfg["model"]["type"] == "pix2pix" and cfg["model"]["ngf"] == 32
    assert cfg["feature_nets"] == {"perceptual": None, "identity": None, "identity2": None}
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


def test_progress_bar_shows_every_weighted_loss_and_no_unused_one():
    def keys(model_class, cfg):
        m = model_class.__new__(model_class)
        m.weights = dict(cfg["loss"])
        return m.progress_keys()

    # the shipped default's recipe: L_feat, L_id and the neutrality lever weighted, L_sym and id2 not
    default = load_config("configs/all_data_feat10.yaml")
    assert keys(Pix2PixModel, default) == ("pixel", "feat", "id", "gan_g", "gan_d", "neutral")
    lever = load_config(overrides={"model": {"type": "pix2pix"}, "loss": {"neutral": 0.5}})
    assert keys(Pix2PixModel, lever) == ("pixel", "gan_g", "gan_d", "neutral")
    from nfgan.models.nfgan import NFGANModel

    paper = load_config()          # the paper's NFGAN: every loss of eqs. (2)-(7) is weighted
    assert keys(NFGANModel, paper) == ("feat", "id", "pixel", "sym", "gan_dec", "gan_dis")
    # without the adversarial loss neither side of the GAN is shown (both are still logged)
    no_gan = load_config("configs/baseline_autoencoder.yaml")
    assert no_gan["loss"]["gan"] == 0
    assert keys(NFGANModel, no_gan) == ("pixel",)          # the L1 autoencoder baseline
    plain_l1 = load_config(overrides={"model": {"type": "pix2pix"}, "loss": {"gan": 0.0}})
    assert keys(Pix2PixModel, plain_l1) == ("pixel",)


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
    assert list(vals) == ["pixel", "feat", "id", "id2", "id_rank", "sym", "gan_g", "gan_d", "neutral",
                         "code"]   # the U-Net's own
    assert vals["feat"] == vals["id"] == vals["sym"] == vals["code"] == 0.0
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
    assert off.model.critics == [] and off.train_step()["neutral"] == 0.0
    cfg = p2p_config(root, batch_size=8)
    cfg["loss"].update(neutral=1.0, pixel=0.0, gan=0.0)
    cfg["optim"]["gen"]["lr"] = 2e-3
    tr = Trainer(cfg)
    assert all(not p.requires_grad for c in tr.model.critics for p in c.parameters())
    first = tr.train_step()["neutral"]
    for _ in range(20):
        last = tr.train_step()["neutral"]
    assert first > 0.5 and last < first / 10, (first, last)


def test_several_critics_share_the_lever(tmp_path):
    """loss.neutral_critics [minixception, nfgan]: the lever is the mean of the critics' -log p_neutral on the
    same outputs; names other than the known ones and paths are refused before training."""
    from conftest import make_prepared, p2p_config

    from nfgan.models import losses as L
    from nfgan.models.auxiliary.neutral_critic import NeutralCritic
    from nfgan.models.pix2pix import load_critic
    from nfgan.training.loop import Trainer

    root = make_prepared(tmp_path / "d", subjects=4)
    cfg = p2p_config(root, batch_size=8)
    cfg["loss"].update(neutral=1.0, neutral_critics=["minixception", "nfgan"])
    tr = Trainer(cfg)
    first, second = tr.model.critics
    assert isinstance(second, NeutralCritic) and first.labels.index("neutral") == 6 and second.labels[0] == "neutral"
    seen = []
    for c in (first, second):
        c.register_forward_hook(lambda m, i, o: seen.append((m, o.detach())))
    losses = tr.train_step()
    assert [m for m, _ in seen] == [first, second] and losses["neutral"] > 0
    each = [L.neutrality_loss(o, m.labels.index("neutral")).item() for m, o in seen]
    assert each[0] != pytest.approx(each[1])
    assert losses["neutral"] == pytest.approx(sum(each) / 2, rel=1e-5)
    own = tmp_path / "own.safetensors"
    NeutralCritic().save(own)
    assert isinstance(load_critic(str(own)), NeutralCritic)
    for bad, msg in ((["faceapi"], "unknown critic"), ([], "at least one")):
        with pytest.raises(ConfigError, match=msg):
            load_config(overrides={"model": {"type": "pix2pix"}, "loss": {"neutral_critics": bad}})


def test_identity_loss_against_the_target_when_asked(prepared):
    """loss.id_reference: target compares the output's identity maps with its target's (the real frontal neutral
    face) instead of its input's."""
    cfg = p2p_config(prepared)
    cfg["model"]["dropout"] = 0.0
    cfg["loss"].update(id=0.5, id_reference="target")
    tr = Trainer(cfg, feature_nets={"identity": tiny_nets()["identity"]})
    m = tr.model
    batch = tr.sample_batch()
    assert not torch.equal(batch.x, batch.y)
    losses = m.compute_losses(batch)
    with torch.no_grad():
        fake = m.nets["gen"](batch.x)
        to_target = L.identity_loss(m.features.identity(fake), m.features.identity(batch.y))
        to_input = L.identity_loss(m.features.identity(fake), m.features.identity(batch.x))
    assert float(losses["id"].detach()) == pytest.approx(float(to_target), rel=1e-4)
    assert float(to_target) != pytest.approx(float(to_input), rel=1e-3)
    with pytest.raises(ConfigError, match="id_reference"):
        load_config(overrides={"model": {"type": "pix2pix"}, "loss": {"id_reference": "output"}})


def _generator_gradient(m, losses) -> torch.Tensor:
    """The generator's flattened gradient: of one loss tensor, or (a dict) of the model's whole backward pass."""
    gen_p = list(m.nets["gen"].parameters())
    if isinstance(losses, torch.Tensor):
        return torch.cat([g.flatten() for g in torch.autograd.grad(losses, gen_p, retain_graph=True)])
    for net in m.nets.values():
        net.zero_grad(set_to_none=True)
    m.backward(losses)
    return torch.cat([p.grad.flatten() for p in gen_p])


def test_second_identity_loss_has_its_own_net_and_weight(prepared):
    """loss.id2: eq. (6) again with feature_nets.identity2's network, against the same reference (the input), on the
    same outputs; it reaches the generator's gradient with its own weight, and with id2 = 0 no net is loaded."""
    from nfgan.models.auxiliary.identity_net import IdentityNet

    torch.manual_seed(1)
    second = IdentityNet(width=4, embed_dim=8)
    grads = {}
    for w in (0.0, 0.5):
        cfg = p2p_config(prepared)
        cfg["model"]["dropout"] = 0.0
        cfg["loss"].update(id=0.5, id2=w)
        tr = Trainer(cfg, feature_nets={"identity": tiny_nets()["identity"], "identity2": second})
        m = tr.model
        assert (m.features.identity2 is not None) == (w > 0)
        torch.manual_seed(0)
        m.nets["gen"] = Pix2PixModel.build_generator(cfg["model"])["gen"]   # same initial generator for both
        batch = tr.sample_batch()
        losses = m.compute_losses(batch)
        if w == 0:
            assert float(losses["id2"].detach()) == 0.0
        else:
            with torch.no_grad():
                fake = m.nets["gen"](batch.x)
                ref = L.identity_loss(second(fake), second(batch.x))
            assert float(losses["id2"].detach()) == pytest.approx(float(ref), rel=1e-4)
            assert float(losses["id2"].detach()) != pytest.approx(float(losses["id"].detach()), rel=1e-3)
            g2 = _generator_gradient(m, losses["id2"])
        grads[w] = _generator_gradient(m, losses)
    torch.testing.assert_close(grads[0.5] - grads[0.0], 0.5 * g2, atol=1e-5, rtol=1e-3)
    with pytest.raises(ConfigError, match=r"loss.id2 = 0.1 needs feature_nets.identity2"):
        load_config(overrides={"model": {"type": "pix2pix"}, "loss": {"id2": 0.1}})


def test_identity_rank_loss_ranks_own_reference_against_other_people_only():
    """loss.id_rank's term: -log of the own reference's share of a softmax over distances, the same person's other
    rows left out; 0 when the batch holds one person; smaller when each output sits nearest its own reference."""
    refs = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    subjects = torch.tensor([0, 0, 1, 2])
    fake = refs + torch.tensor([[0.1, 0.0], [0.0, 0.2], [0.3, 0.0], [0.0, -0.1]])
    got = L.identity_rank_loss(fake, refs, subjects, temperature=0.5)
    d = torch.cdist(fake, refs)
    expect = []
    for i in range(4):
        cols = [j for j in range(4) if j == i or subjects[j] != subjects[i]]
        expect.append(-torch.log_softmax(-d[i, cols] / 0.5, 0)[cols.index(i)])
    assert float(got) == pytest.approx(float(torch.stack(expect).mean()), rel=1e-5)
    # row 0's same-person row 1 is not a competitor: moving output 0 onto reference 1 changes only its own distance
    moved = fake.clone()
    moved[0] = refs[1]
    dm = torch.cdist(moved, refs)
    row0 = -torch.log_softmax(-dm[0, [0, 2, 3]] / 0.5, 0)[0]
    assert float(L.identity_rank_loss(moved, refs, subjects, 0.5)) == pytest.approx(
        float((row0 + torch.stack(expect[1:]).sum()) / 4), rel=1e-5)
    assert float(L.identity_rank_loss(fake, refs, torch.zeros(4, dtype=torch.long))) == 0.0
    # outputs collapsed onto one average face rank worse than outputs next to their own references
    mean_face = refs.mean(0, keepdim=True).expand(4, 2)
    assert float(L.identity_rank_loss(mean_face, refs, subjects)) > float(L.identity_rank_loss(fake, refs, subjects))


def test_subject_codes_name_each_rows_person(tmp_path):
    """TrainingData.subject_codes: one code per person over plain, mirror and frontalised rows, equal to the code
    of the face the row shows; different people get different codes."""
    import csv

    from nfgan.data.frontalize import FRONTAL68
    from nfgan.training.data import TrainingData

    root = make_prepared(tmp_path / "d", subjects=5)
    with open(root / "manifest.csv", newline="") as f:
        poses = [r["pose"] for r in csv.DictReader(f)]
    shift = {"frontal": 0, "left_3quarter": -6, "right_3quarter": 6}
    np.save(root / "landmarks.npy", np.stack([FRONTAL68 * 63 + [shift[p], 0] for p in poses]).astype(np.float32))
    cfg = p2p_config(root)
    cfg["data"].update(frontalize_inputs=True, flip_left_poses=True)
    data = TrainingData(cfg, torch.device("cpu"))
    codes = data.subject_codes()
    f = data.faces
    assert len(codes) == len(data) and len(f.front_of) > 0 and f.base == 2 * f.n
    names = data.sources[0].dataset.columns.values_of("subject")
    for i in range(f.n):
        assert codes[i] == codes[i + f.n]                                 # a face and its mirror
        assert (codes[:f.n] == codes[i]).sum() == (names == names[i]).sum()   # the same person, and only them
    assert np.array_equal(codes[f.base:], codes[f.front_of])              # a frontalised row is its face's person
    assert len(np.unique(codes)) == len(np.unique(names)) == 5


def test_identity_rank_term_reaches_the_generator_with_its_weight(prepared):
    """loss.id_rank: the batch's ranking term on the identity net's descriptors of the outputs against the inputs'
    cached descriptors, people from subject_codes; its gradient joins the generator's with its own weight; it is
    refused without L_id, and with weight 0 nothing is computed (0 logged)."""
    grads = {}
    for w in (0.0, 0.5):
        cfg = p2p_config(prepared)
        cfg["model"]["dropout"] = 0.0
        cfg["loss"].update(id=0.5, id_rank=w)
        cfg["train"]["batch_size"] = 8
        tr = Trainer(cfg, feature_nets={"identity": tiny_nets()["identity"]})
        m = tr.model
        assert (m.features.subject_code is not None) == (w > 0)
        torch.manual_seed(0)
        m.nets["gen"] = Pix2PixModel.build_generator(cfg["model"])["gen"]
        batch = tr.sample_batch()
        losses = m.compute_losses(batch)
        if w == 0:
            assert float(losses["id_rank"].detach()) == 0.0
        else:
            people = torch.from_numpy(tr.data.subject_codes()[batch.x_rows])
            assert len(torch.unique(people)) > 1
            with torch.no_grad():
                fake = m.nets["gen"](batch.x)
                ref = L.identity_rank_loss(m.features.identity(fake)[-1], m.features.identity(batch.x)[-1], people)
            assert float(losses["id_rank"].detach()) == pytest.approx(float(ref), rel=1e-4)
            assert float(ref) > 0
            g2 = _generator_gradient(m, losses["id_rank"])
        grads[w] = _generator_gradient(m, losses)
    torch.testing.assert_close(grads[0.5] - grads[0.0], 0.5 * g2, atol=1e-5, rtol=1e-3)
    with pytest.raises(ConfigError, match=r"loss.id_rank = 0.3 ranks L_id's descriptors and needs loss.id > 0"):
        load_config(overrides={"model": {"type": "pix2pix"}, "loss": {"id_rank": 0.3}})


def test_deep_codes_are_the_forward_pass_maps_below_the_skip_mask_and_leave_batchnorm_alone():
    """UNetGenerator.deep_codes: the encoder's 4, 2 and 1 px maps, equal (in training mode, same batch) to the ones the
    forward pass returns with code_size, whose output is the plain forward's; the extra pass leaves BatchNorm's
    running statistics and batch count exactly as they were, and the forward pass still updates them."""
    torch.manual_seed(0)
    g = UNetGenerator(dropout=0.0, skip_mask=1.0).train()
    x = torch.rand(4, 1, 64, 64) * 2 - 1
    before = {k: v.clone() for k, v in g.state_dict().items()}
    with torch.no_grad():
        codes = g.deep_codes(x)
    assert [tuple(c.shape[1:]) for c in codes] == [(256, 4, 4), (256, 2, 2), (256, 1, 1)]
    assert all(torch.equal(v, before[k]) for k, v in g.state_dict().items())
    out, again = g(x, code_size=4)
    g.load_state_dict(before)
    assert torch.equal(out, g(x))
    assert all(torch.equal(a, b) for a, b in zip(codes, again))
    moved = [k for k, v in g.state_dict().items() if not torch.equal(v, before[k])]
    assert moved and all("running" in k or "num_batches" in k for k in moved)
    g.load_state_dict(before)
    with torch.no_grad():
        wider = g.deep_codes(x, 16)
    assert [c.shape[-1] for c in wider] == [16, 8, 4, 2, 1] and all(torch.equal(a, b) for a, b in zip(wider[2:], codes))
    assert [c.shape[-1] for c in g(x, code_size=16)[1]] == [16, 8, 4, 2, 1]


def test_code_invariance_loss_is_relative_and_reaches_only_the_inputs_code():
    a = [torch.full((2, 3, 4, 4), 2.0, requires_grad=True), torch.ones(2, 3, 1, 1, requires_grad=True)]
    t = [torch.full((2, 3, 4, 4), 2.0, requires_grad=True), torch.full((2, 3, 1, 1), 3.0, requires_grad=True)]
    loss = L.code_invariance_loss(a, t)
    assert float(loss.detach()) == pytest.approx((0.0 + 4.0 / 9.0) / 2)   # per map, relative to the target's scale
    loss.backward()
    assert t[0].grad is None and t[1].grad is None and a[1].grad is not None
    assert float(L.code_invariance_loss([torch.zeros(1, 2, 2, 2)], [torch.randn(1, 2, 2, 2) + 3])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="maps"):
        L.code_invariance_loss(a, t[:1])


def test_code_term_pulls_the_inputs_code_to_the_targets_with_its_weight(prepared):
    """loss.code: logged as the relative distance of the input's deep code to its target's (computed again here from
    the same batch); its gradient joins the generator's with its weight, and only the encoder's layers up to the 4 px
    map and below receive it; weight 0 computes nothing. Steps on a fixed batch bring the codes together. Refused with
    a two-channel input."""
    grads = {}
    for w in (0.0, 2.0):
        cfg = p2p_config(prepared)
        cfg["model"]["dropout"] = 0.0
        cfg["loss"]["code"] = w
        tr = Trainer(cfg)
        m = tr.model
        torch.manual_seed(0)
        m.nets["gen"] = Pix2PixModel.build_generator(cfg["model"])["gen"]
        batch = tr.sample_batch()
        losses = m.compute_losses(batch)
        if w == 0:
            assert float(losses["code"]) == 0.0
        else:
            gen = m.nets["gen"]
            with torch.no_grad():
                want = L.code_invariance_loss(gen(batch.x, code_size=4)[1], gen.deep_codes(batch.y))
            assert float(losses["code"].detach()) == pytest.approx(float(want), rel=1e-5) and float(want) > 0
            own = torch.autograd.grad(losses["code"], list(gen.parameters()), retain_graph=True, allow_unused=True)
            reached = {n for (n, _), g in zip(gen.named_parameters(), own) if g is not None and g.abs().sum() > 0}
            assert reached and all(n.startswith("down.") for n in reached)
            g2 = torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                            for p, g in zip(gen.parameters(), own)])
        grads[w] = _generator_gradient(m, losses)
    torch.testing.assert_close(grads[2.0] - grads[0.0], 2.0 * g2, atol=1e-5, rtol=1e-3)

    cfg = p2p_config(prepared)
    cfg["loss"].update(code=20.0, pixel=0.0, gan=0.0)
    cfg["optim"]["gen"]["lr"] = 1e-3
    tr = Trainer(cfg)
    batch = tr.sample_batch()
    tr.sample_batch = lambda: batch
    history = [tr.train_step()["code"] for _ in range(10)]
    assert history[-1] < 0.5 * history[0], history
    with pytest.raises(ConfigError, match="loss.code = 1.0 .* model.in_channels: 1"):
        load_config(overrides={"model": {"type": "pix2pix", "in_channels": 2}, "loss": {"code": 1.0},
                               "data": {"frontalize_inputs": True, "frontalize_fill": "both"}})


def test_skip_mask_shuts_the_fine_skips_inside_the_mouth_and_brows_only(tmp_path):
    """model.skip_mask: the gates sit on the template's mouth and brows and leave eyes, nose tip and the frame
    alone; with the same weights the masked U-Net's output differs from the plain one only near those regions;
    the gates travel in the state dict, and a trained run reloads with its mask."""
    from nfgan.data.align import template_points
    from nfgan.inference import load_model
    from nfgan.models.unet import expression_region_mask
    from nfgan.training.loop import train

    m = expression_region_mask(64).numpy()
    t = np.rint(template_points(64)).astype(int)
    at = lambda p: m[p[1], p[0]]   # noqa: E731
    mouth, brows = np.rint(template_points(64)[31:43].mean(0)).astype(int), t[2]
    eyes, nose_tip = np.rint(template_points(64)[[19, 22, 25, 28]]).astype(int), t[13]
    assert at(mouth) == 1.0 and at(brows) == 1.0 and at(t[31]) == 1.0 and at(t[37]) == 1.0   # lip corners too
    assert max(at(p) for p in eyes) < 0.5 and at(nose_tip) < 0.5 and m[:4].max() == 0 and m[:, :4].max() == 0

    torch.manual_seed(0)
    plain = UNetGenerator(dropout=0.0).eval()
    masked = UNetGenerator(dropout=0.0, skip_mask=1.0).eval()
    assert set(masked.state_dict()) - set(plain.state_dict()) == {"skip_gate0", "skip_gate1", "skip_gate2"}
    masked.load_state_dict({**masked.state_dict(), **plain.state_dict()})
    assert masked.masked_skips == (0, 1, 2)
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        diff = (masked(x) - plain(x)).abs()[:, 0]
    ring = np.ones((64, 64), dtype=bool)
    ring[4:-4, 4:-4] = False
    in_mask = torch.as_tensor(m == 1.0)
    assert float(diff[:, torch.as_tensor(ring)].mean()) < 0.05 * float(diff[:, in_mask].mean())   # the frame: barely
    assert diff[:, mouth[1], mouth[0]].min() > 1e-3 and diff[:, brows[1], brows[0]].min() > 1e-3
    half = UNetGenerator(dropout=0.0, skip_mask=0.5)
    assert torch.allclose(half.skip_gate0, 1 - 0.5 * (1 - masked.skip_gate0))
    with pytest.raises(ValueError, match="skip_mask"):
        UNetGenerator(skip_mask=1.5)
    with pytest.raises(ConfigError, match="skip_mask"):
        load_config(overrides={"model": {"type": "pix2pix", "skip_mask": 2.0}})

    root = make_prepared(tmp_path / "d", subjects=4)
    cfg = p2p_config(root, steps=2)
    cfg["model"]["skip_mask"] = 1.0
    train(cfg, tmp_path / "run", progress=False)
    g = load_model(tmp_path / "run")
    assert g.nets["gen"].masked_skips == (0, 1, 2) and g.info["model"]["skip_mask"] == 1.0
    faces = (np.random.default_rng(0).random((2, 64, 64)) * 255).astype(np.uint8)
    reference = load_model(tmp_path / "run")
    reference.nets["gen"] = UNetGenerator(64, 8, 256, 0.5).eval()
    reference.nets["gen"].load_state_dict({k: v for k, v in g.nets["gen"].state_dict().items() if "gate" not in k})
    assert not np.array_equal(g.normalize(faces), reference.normalize(faces))   # the mask is in use


def test_skip_shut_sides_close_whole_skips_and_travel_with_the_model(tmp_path):
    """model.skip_shut_sides: the skips of those sizes pass nothing anywhere (their encoder maps no longer reach the
    output except through the coarser maps), the other masked skips keep the mouth-and-brows mask; bad sizes are
    refused; a run trained with it reloads with its gates."""
    from nfgan.inference import load_model
    from nfgan.training.loop import train

    torch.manual_seed(0)
    g = UNetGenerator(dropout=0.0, skip_mask=1.0, skip_shut_sides=(16, 8)).eval()
    assert g.masked_skips == (0, 1, 2)
    assert float(g.skip_gate1.abs().sum()) == 0 and float(g.skip_gate2.abs().sum()) == 0
    assert torch.equal(g.skip_gate0, UNetGenerator(skip_mask=1.0).skip_gate0)
    only = UNetGenerator(dropout=0.0, skip_shut_sides=(8,))
    assert only.masked_skips == (2,)
    # the 16 px skip map changed (by a hook on the encoder layer's output) moves the output only through the
    # coarser path: with the coarser layers' weights zeroed as well, it does not move it at all
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    for layer in g.down[2:]:
        for p in layer.parameters():
            p.data.zero_()
    with torch.no_grad():
        base = g(x)
        handle = g.down[1].register_forward_hook(lambda m, i, o: o + torch.randn_like(o))
        moved = g(x)
        handle.remove()
    assert torch.equal(base, moved)
    with pytest.raises(ValueError, match="skip_shut_sides"):
        UNetGenerator(skip_shut_sides=(12,))
    with pytest.raises(ConfigError, match="skip_shut_sides"):
        load_config(overrides={"model": {"type": "pix2pix", "skip_shut_sides": [16, 16]}})

    root = make_prepared(tmp_path / "d", subjects=4)
    cfg = p2p_config(root, steps=2)
    cfg["model"]["skip_shut_sides"] = [8]
    train(cfg, tmp_path / "run", progress=False)
    m = load_model(tmp_path / "run")
    assert m.info["model"]["skip_shut_sides"] == [8] and m.nets["gen"].masked_skips == (2,)
    assert float(m.nets["gen"].skip_gate2.abs().sum()) == 0


def test_skip_mask_regions_add_the_eyes_and_refuse_unknown_regions(tmp_path):
    """model.skip_mask_regions: the default (mouth, brows) is the mask the shipped files were trained with;
    adding eyes shuts both eyes as well and nothing else new; a run trained with it reloads with its mask."""
    from nfgan.data.align import template_points
    from nfgan.inference import load_model
    from nfgan.models.unet import expression_region_mask
    from nfgan.training.loop import train

    base = expression_region_mask(64).numpy()
    assert np.array_equal(base, expression_region_mask(64, ("brows", "mouth")).numpy())   # order does not matter
    eyes = expression_region_mask(64, ("mouth", "brows", "eyes")).numpy()
    pts = np.rint(template_points(64)).astype(int)
    for p in pts[19:31]:                                       # every eye point: shut only with "eyes"
        assert eyes[p[1], p[0]] == 1.0 and base[p[1], p[0]] < 1.0
    assert (eyes >= base).all() and eyes[pts[13][1], pts[13][0]] < 0.5     # a superset; the nose tip stays open
    added = (eyes > 0) & (base == 0)
    assert 0 < added.sum() < 0.15 * 64 * 64 and not added[28:].any()      # the added area lies above row 28
    with pytest.raises(ValueError, match="regions"):
        expression_region_mask(64, ("nose",))
    with pytest.raises(ConfigError, match="skip_mask_regions"):
        load_config(overrides={"model": {"type": "pix2pix", "skip_mask": 1.0, "skip_mask_regions": ["nose"]}})
    with pytest.raises(ConfigError, match="skip_mask_regions"):
        load_config(overrides={"model": {"type": "pix2pix", "skip_mask_regions": []}})

    root = make_prepared(tmp_path / "d", subjects=4)
    cfg = p2p_config(root, steps=2)
    cfg["model"].update(skip_mask=1.0, skip_mask_regions=["mouth", "brows", "eyes"])
    train(cfg, tmp_path / "run", progress=False)
    g = load_model(tmp_path / "run")
    want = UNetGenerator(skip_mask=1.0, skip_mask_regions=("mouth", "brows", "eyes"))
    assert g.info["model"]["skip_mask_regions"] == ["mouth", "brows", "eyes"]
    assert torch.equal(g.nets["gen"].skip_gate0, want.skip_gate0)
    assert not torch.equal(want.skip_gate0, UNetGenerator(skip_mask=1.0).skip_gate0)


def test_tone_norm_makes_the_generator_follow_the_photos_brightness_and_contrast(tmp_path):
    """model.tone_norm: the U-Net works on each face with its central window's tone taken out, and puts that
    tone back on its output, so a brighter or flatter copy of a photo gives the same face, brighter or flatter
    by the same affine map; off (the default) the generator is the plain one, Tanh included; a run trained with
    it reloads with it, and outputs stay in [-1, 1] outside training."""
    from nfgan.inference import load_model
    from nfgan.models.unet import TONE_MIN_STD, expression_region_mask, tone_stats, tone_weights
    from nfgan.training.loop import train

    torch.manual_seed(0)
    g = UNetGenerator(dropout=0.0, tone_norm=True).eval()
    x = torch.rand(3, 1, 64, 64) * 0.8 - 0.5
    with torch.no_grad():
        y = g(x)
        for gain, offset in ((0.5, 0.2), (1.3, -0.1)):
            changed = g(x * gain + offset)
            want = (y * gain + offset).clamp(-1, 1)
            inside = (y * gain + offset).abs() < 1          # where neither output is clamped
            assert torch.allclose(changed[inside], want[inside], atol=1e-5)
        wild = g(torch.rand(2, 1, 64, 64) * 4 - 2)
    assert y.abs().max() <= 1 and wild.abs().max() <= 1
    mean, std = tone_stats(torch.full((1, 1, 64, 64), 0.3))
    assert float(mean) == pytest.approx(0.3, abs=1e-6) and float(std) == pytest.approx(TONE_MIN_STD)   # not amplified
    frame = torch.zeros(1, 1, 64, 64)
    frame[..., 16:48, 16:48] = 0.5
    assert float(tone_stats(frame)[0]) == pytest.approx(0.5)           # the stats ignore everything outside
    faces = torch.rand(2, 1, 64, 64) * 2 - 1
    ones = tone_weights(64, "window")
    assert all(torch.allclose(a, b) for a, b in zip(tone_stats(faces, ones), tone_stats(faces)))
    steady = tone_weights(64, "steady")
    mouth = expression_region_mask(64) == 1.0
    opened = faces.clone()
    opened[..., mouth] = -1.0                                          # a dark open mouth and frown
    assert all(torch.equal(a, b) for a, b in zip(tone_stats(opened, steady), tone_stats(faces, steady)))
    assert not torch.allclose(tone_stats(opened)[0], tone_stats(faces)[0])  # the plain window does move
    assert 0.5 < float(steady.mean()) < 0.8
    g_steady = UNetGenerator(dropout=0.0, tone_norm=True, tone_region="steady").eval()
    assert set(g_steady.state_dict()) == set(g.state_dict())          # the weights are made, not stored
    with pytest.raises(ValueError, match="tone"):
        UNetGenerator(tone_norm=True, tone_region="cheeks")
    plain = UNetGenerator(dropout=0.0)
    assert isinstance(plain.up[-1][-1], torch.nn.Tanh) and not isinstance(g.up[-1][-1], torch.nn.Tanh)
    assert set(plain.state_dict()) == set(g.state_dict())
    g.load_state_dict(plain.state_dict())
    with torch.no_grad():
        assert not torch.allclose(g(x), plain.eval()(x), atol=1e-3)   # the option changes what the net computes

    root = make_prepared(tmp_path / "d", subjects=4)
    cfg = p2p_config(root, steps=2)
    cfg["model"].update(tone_norm=True, tone_region="steady")
    train(cfg, tmp_path / "run", progress=False)
    model = load_model(tmp_path / "run")
    assert model.nets["gen"].tone_norm and model.info["model"]["tone_norm"] is True
    assert torch.equal(model.nets["gen"].tone_weight, steady)          # the region comes back from the setting
    faces = (np.random.default_rng(0).random((2, 64, 64)) * 200 + 20).astype(np.uint8)
    out = model.normalize(faces).astype(np.float64)
    darker = model.normalize((faces * 0.5).astype(np.uint8)).astype(np.float64)
    assert abs(darker.mean() - 0.5 * out.mean()) < 4        # the output follows the photo's exposure
    with pytest.raises(ConfigError, match="tone_norm"):
        load_config(overrides={"model": {"type": "pix2pix", "tone_norm": "maybe"}})
    with pytest.raises(ConfigError, match="tone_region"):
        load_config(overrides={"model": {"type": "pix2pix", "tone_norm": True, "tone_region": "cheeks"}})
    with pytest.raises(ConfigError, match="tone_region = steady does nothing without model.tone_norm"):
        load_config(overrides={"model": {"type": "pix2pix", "tone_region": "steady"}})


@pytest.mark.parametrize("region", ["window", "steady"])
def test_tone_lock_gives_the_output_window_the_inputs_tone(tmp_path, region):
    """model.tone_lock: whatever tone the U-Net draws, its output's window (same region and weights as the
    input's measurement) has exactly the input's mean and standard deviation; without it the output's tone is
    the network's own; the lock adds no weights, needs tone_norm, and a run trained with it reloads with it."""
    from nfgan.inference import load_model
    from nfgan.models.unet import tone_stats, tone_weights

    torch.manual_seed(0)
    x = torch.rand(4, 1, 64, 64) * 0.6 - 0.4
    x[1] = x[1] * 0.3 - 0.5                                            # a dark, flat face
    weights = None if region == "window" else tone_weights(64, region)
    free = UNetGenerator(dropout=0.0, tone_norm=True, tone_region=region)
    locked = UNetGenerator(dropout=0.0, tone_norm=True, tone_region=region, tone_lock=True)
    locked.load_state_dict(free.state_dict())
    assert set(locked.state_dict()) == set(free.state_dict())
    want_mean, want_std = tone_stats(x, weights)
    for g in (free.train(), locked.train()):                           # training: no clamp on the output
        mean, std = tone_stats(g(x), weights)
        close = torch.allclose(mean, want_mean, atol=1e-4) and torch.allclose(std, want_std, atol=1e-4)
        assert close == g.tone_lock                                      # only the lock fixes the tone
    y = locked.eval()(x)
    assert bool((y.abs() < 1).all())                                   # the inference clamp does not cut in here
    assert torch.allclose(tone_stats(y, weights)[0], want_mean, atol=1e-4)
    with pytest.raises(ValueError, match="tone_lock needs tone_norm"):
        UNetGenerator(tone_lock=True)
    with pytest.raises(ConfigError, match="tone_lock does nothing without model.tone_norm"):
        load_config(overrides={"model": {"type": "pix2pix", "tone_lock": True}})
    if region == "window":
        root = make_prepared(tmp_path / "d", subjects=4)
        cfg = p2p_config(root, steps=2)
        cfg["model"].update(tone_norm=True, tone_lock=True)
        train(cfg, tmp_path / "run", progress=False)
        model = load_model(tmp_path / "run")
        assert model.nets["gen"].tone_lock and model.info["model"]["tone_lock"] is True
