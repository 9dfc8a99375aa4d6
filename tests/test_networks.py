"""Encoder / decoder / discriminator shapes and layer structure against Tables 1-3."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nfgan.models.networks import Decoder, Discriminator, Encoder, build_networks


def _layers(module, kind):
    return [m for m in module.modules() if isinstance(m, kind)]


def test_encoder_table1():
    enc = Encoder()
    convs = _layers(enc, nn.Conv2d)
    assert [c.out_channels for c in convs] == [32, 64, 128, 256]
    assert all(c.kernel_size == (3, 3) and c.stride == (2, 2) for c in convs)
    assert len(_layers(enc.convs, nn.BatchNorm2d)) == 3          # BN on Conv2-4, not Conv1
    assert not any(isinstance(m, nn.BatchNorm2d) for m in enc.convs[0])
    fcs = _layers(enc, nn.Linear)
    assert [f.out_features for f in fcs] == [512, 256]
    assert isinstance(enc.fc2, nn.Linear)                          # last layer: no BN, no activation
    enc.eval()
    z = enc(torch.randn(3, 1, 64, 64))
    assert z.shape == (3, 256)
    assert (z < 0).any()                                           # linear output, not ReLU'd


def test_decoder_table2_doubles_exactly_to_64():
    dec = Decoder()
    fconvs = _layers(dec, nn.ConvTranspose2d)
    assert [c.out_channels for c in fconvs] == [512, 256, 128, 64, 1]
    assert all(c.kernel_size == (3, 3) and c.stride == (2, 2) for c in fconvs)
    assert len(_layers(dec, nn.BatchNorm2d)) == 4
    sizes = []
    h = torch.randn(2, 256).reshape(2, 64, 2, 2)
    for block in dec.fconvs:
        h = block(h)
        sizes.append(h.shape[-1])
    assert sizes == [4, 8, 16, 32, 64]
    dec.eval()
    out = dec(torch.randn(5, 256) * 10)
    assert out.shape == (5, 1, 64, 64)
    assert out.min() >= -1 and out.max() <= 1                      # Tanh


def test_discriminator_table3_patch_logits():
    dis = Discriminator()
    convs = _layers(dis, nn.Conv2d)
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert [c.stride for c in convs] == [(2, 2)] * 4 + [(1, 1)]
    lrelus = _layers(dis, nn.LeakyReLU)
    assert len(lrelus) == 4 and all(m.negative_slope == 0.3 for m in lrelus)
    assert len(_layers(dis, nn.BatchNorm2d)) == 3
    dis.eval()
    x = torch.randn(2, 1, 64, 64)
    logits = dis(x)
    assert logits.shape == (2, 1, 4, 4)
    torch.testing.assert_close(dis.probabilities(x), torch.sigmoid(logits))


def test_latent_256_must_match_2x2_seed():
    with pytest.raises(ValueError, match="latent_dim must be 256"):
        Decoder(latent_dim=128)
    with pytest.raises(ValueError, match="image_size"):
        Encoder(image_size=96)


def test_128_variant_shapes():
    nets = build_networks(image_size=128)
    for n in nets.values():
        n.eval()
    x = torch.randn(2, 1, 128, 128)
    z = nets["enc"](x)
    assert z.shape == (2, 256)
    assert nets["dec"](z).shape == (2, 1, 128, 128)
    assert nets["dis"](x).shape == (2, 1, 4, 4)


def test_autoencoder_is_trainable_end_to_end():
    """Gradients flow through all layers: a few Adam steps fit two fixed faces better than at the start."""
    torch.manual_seed(0)
    nets = build_networks()
    enc, dec = nets["enc"], nets["dec"]
    x = torch.rand(4, 1, 64, 64) * 2 - 1
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=2e-3)
    first = None
    for _ in range(15):
        loss = (dec(enc(x)) - x).abs().mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.9 * first
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
