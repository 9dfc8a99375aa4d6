"""Sec. 4.6 gradient routing, proved on real gradients of one training step.

* Enc's gradients are identical with and without the adversarial and symmetry terms (they never reach Enc);
* Dec's gradients change when those terms are on (they do reach Dec);
* Dis receives gradients from L_GAN-Dis only: equal to the gradient of the pure eq. (4) loss, and no
  gradient at all from the generator's objective.
"""
from __future__ import annotations

import copy

import pytest
import torch

from conftest import make_prepared, tiny_config, tiny_nets
from nfgan.models import losses as L
from nfgan.models.nfgan import routed_backward
from nfgan.training.loop import Trainer


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    root = make_prepared(tmp_path_factory.mktemp("routing"), subjects=4)
    return Trainer(tiny_config(root, batch_size=6), feature_nets=tiny_nets())


def _grads(trainer, weights, batch) -> dict[str, dict[str, torch.Tensor | None]]:
    """Gradients after one routed backward with ``weights``, from the same starting state."""
    nets = trainer.model.nets
    state = {k: copy.deepcopy(n.state_dict()) for k, n in nets.items()}
    for n in nets.values():
        n.train()
        n.zero_grad(set_to_none=True)
    losses = trainer.model.compute_losses(batch)
    routed_backward(nets, losses, weights)
    out = {k: {name: (p.grad.clone() if p.grad is not None else None) for name, p in n.named_parameters()}
           for k, n in nets.items()}
    for k, n in nets.items():  # undo BN running-stat updates so every call starts equal
        n.load_state_dict(state[k])
        n.zero_grad(set_to_none=True)
    return out


def test_adversarial_and_symmetry_never_reach_encoder(trainer):
    rows = trainer.sample_batch()
    base = dict(trainer.model.weights)
    on = _grads(trainer, base, rows)
    off = _grads(trainer, {**base, "gan": 0.0, "sym": 0.0}, rows)
    sym_only = _grads(trainer, {**base, "gan": 0.0}, rows)
    for name, g in on["enc"].items():
        assert g is not None and g.abs().sum() > 0, name
        assert torch.equal(g, off["enc"][name]), name
        assert torch.equal(g, sym_only["enc"][name]), name
    # ... but they do reach the decoder, each on its own
    diff_all = sum((on["dec"][n] - off["dec"][n]).abs().sum() for n in on["dec"])
    diff_sym = sum((sym_only["dec"][n] - off["dec"][n]).abs().sum() for n in on["dec"])
    assert diff_all > 0 and diff_sym > 0


def test_decoder_gradient_is_sum_of_its_objectives(trainer):
    """Dec's gradient = grad of L_E + eta L_GAN-Dec + l3 L_sym, computed independently with autograd.grad."""
    rows = trainer.sample_batch()
    got = _grads(trainer, trainer.model.weights, rows)["dec"]
    nets, w = trainer.model.nets, trainer.model.weights
    state = {k: copy.deepcopy(n.state_dict()) for k, n in nets.items()}
    losses = trainer.model.compute_losses(rows)
    total = (w["feat"] * losses["feat"] + w["id"] * losses["id"] + w["pixel"] * losses["pixel"]
             + w["gan"] * losses["gan_dec"] + w["sym"] * losses["sym"])
    names, params = zip(*nets["dec"].named_parameters())
    want = torch.autograd.grad(total, params)
    for k, n in nets.items():
        n.load_state_dict(state[k])
    for name, g in zip(names, want):
        torch.testing.assert_close(got[name], g, rtol=1e-4, atol=1e-5 * float(g.abs().max()))


def test_discriminator_gets_only_its_own_loss(trainer):
    rows = trainer.sample_batch()
    got = _grads(trainer, trainer.model.weights, rows)["dis"]
    nets = trainer.model.nets
    state = {k: copy.deepcopy(n.state_dict()) for k, n in nets.items()}
    # pure eq. (4) on the same batch, with the generator's output treated as data
    x, g = trainer.data.rows(rows.x_rows), trainer.data.rows(rows.g_rows)
    with torch.no_grad():
        fake = nets["dec"](nets["enc"](x))
    pure = L.discriminator_loss(nets["dis"](g), nets["dis"](fake))
    names, params = zip(*nets["dis"].named_parameters())
    want = torch.autograd.grad(pure, params)
    for k, n in nets.items():
        n.load_state_dict(state[k])
    for name, gw in zip(names, want):
        assert gw.abs().sum() > 0
        torch.testing.assert_close(got[name], gw, rtol=1e-4, atol=1e-5 * float(gw.abs().max()))

    # the generator's adversarial term (through Dis) adds nothing to Dis, whatever its weight
    for eta in (0.0, 10.0):
        other = _grads(trainer, {**trainer.model.weights, "gan": eta}, rows)["dis"]
        for name in got:
            assert torch.equal(other[name], got[name]), (eta, name)
