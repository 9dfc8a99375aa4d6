"""The three trained networks of NFGAN: encoder (Table 1), decoder (Table 2) and discriminator (Table 3).

All three work on gray faces ``B x 1 x 64 x 64`` in [-1, 1] (the decoder's Tanh range). Every 3x3 layer has
padding 1, so a stride-2 convolution halves the side exactly and a stride-2 transposed convolution with
``output_padding=1`` doubles it exactly (64 -> 32 -> ... and 2 -> 4 -> ... -> 64).

The decoder's input: Table 2 has five stride-2 fractional convolutions ending at 64 x 64, so the 256-d code
``z`` is reshaped (no extra projection layer) to ``64 x 2 x 2``: 256 = 64 x 2 x 2, and 2 -> 4 -> ... -> 64 takes
exactly those five layers.

``image_size=128`` gives an optional variant: one more stride-2 layer in the encoder and discriminator
(256 -> 512 channels kept at 256) and a ``64 x 4 x 4`` seed is not possible from 256 values, so the decoder
uses a linear projection of ``z`` to ``64 x 4 x 4`` first. It is not in the paper; 64 is the default.
"""
from __future__ import annotations

import torch
from torch import nn

LATENT_DIM = 256
LRELU_ALPHA = 0.3


def _conv_block(cin: int, cout: int, bn: bool, act: nn.Module, stride: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(act)
    return nn.Sequential(*layers)


def _check_size(image_size: int) -> int:
    if image_size not in (64, 128):
        raise ValueError(f"image_size must be 64 (the paper) or 128, got {image_size}")
    return image_size


class Encoder(nn.Module):
    """Table 1: Conv1-4 3x3/2 with 32/64/128/256 filters (BN on Conv2-4), ReLU; FC1 512 BN ReLU; FC2 256 linear.

    ``forward(x: B x 1 x S x S) -> z: B x 256``. 64 x 64 input gives a 256 x 4 x 4 map before FC1.
    """

    def __init__(self, latent_dim: int = LATENT_DIM, image_size: int = 64):
        super().__init__()
        _check_size(image_size)
        chans = [1, 32, 64, 128, 256] + ([256] if image_size == 128 else [])
        self.convs = nn.Sequential(*[
            _conv_block(chans[i], chans[i + 1], bn=i > 0, act=nn.ReLU(inplace=True)) for i in range(len(chans) - 1)])
        flat = chans[-1] * 4 * 4
        self.fc1 = nn.Sequential(nn.Linear(flat, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(inplace=True))
        self.fc2 = nn.Linear(512, latent_dim)  # Table 1: no BN, no activation on the last layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convs(x)
        return self.fc2(self.fc1(h.flatten(1)))


class Decoder(nn.Module):
    """Table 2: FConv1-5 3x3/2 with 512/256/128/64/1 filters, BN + ReLU except FConv5 (no BN, Tanh).

    ``forward(z: B x 256) -> B x 1 x S x S`` in [-1, 1]. For S = 64 the code is reshaped to 64 x 2 x 2 and
    the five fractionally strided convolutions double it to 64 x 64 (2 -> 4 -> 8 -> 16 -> 32 -> 64).
    """

    SEED_CHANNELS = 64

    def __init__(self, latent_dim: int = LATENT_DIM, image_size: int = 64):
        super().__init__()
        _check_size(image_size)
        self.latent_dim = latent_dim
        if image_size == 64:
            if latent_dim != self.SEED_CHANNELS * 4:
                raise ValueError(f"the 64x64 decoder reshapes z to 64x2x2, so latent_dim must be 256, got {latent_dim}")
            self.project = nn.Identity()
            self.seed = 2
        else:  # 128: five doublings need a 4x4 seed; 256 values cannot be reshaped to 64x4x4
            self.project = nn.Linear(latent_dim, self.SEED_CHANNELS * 16)
            self.seed = 4
        chans = [self.SEED_CHANNELS, 512, 256, 128, 64]
        blocks: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            blocks.append(nn.Sequential(
                nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=False),
                nn.BatchNorm2d(cout), nn.ReLU(inplace=True)))
        blocks.append(nn.Sequential(
            nn.ConvTranspose2d(chans[-1], 1, 3, stride=2, padding=1, output_padding=1), nn.Tanh()))
        self.fconvs = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).reshape(z.shape[0], self.SEED_CHANNELS, self.seed, self.seed)
        return self.fconvs(h)


class Discriminator(nn.Module):
    """Table 3: Conv1-4 3x3/2 with 64/128/256/512 filters, LReLU(0.3), BN except Conv1; Conv5 3x3/1 to 1 map.

    ``forward(x)`` returns the patch LOGITS ``B x 1 x 4 x 4`` (for 64 x 64 input): the losses take
    the binary cross-entropy on logits, which is exact and does not overflow; ``probabilities(x)`` applies
    the sigmoid of Table 3's last layer.
    """

    def __init__(self, image_size: int = 64, alpha: float = LRELU_ALPHA):
        super().__init__()
        _check_size(image_size)
        chans = [1, 64, 128, 256, 512] + ([512] if image_size == 128 else [])
        self.convs = nn.Sequential(*[
            _conv_block(chans[i], chans[i + 1], bn=i > 0, act=nn.LeakyReLU(alpha, inplace=True))
            for i in range(len(chans) - 1)])
        self.head = nn.Conv2d(chans[-1], 1, 3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(x))

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.forward(x))


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """DCGAN-style initialisation: conv/linear weights N(0, std), BN weights N(1, std), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def build_networks(latent_dim: int = LATENT_DIM, image_size: int = 64, lrelu_alpha: float = LRELU_ALPHA,
                   init_std: float | None = 0.02) -> dict[str, nn.Module]:
    """The three networks, freshly initialised: ``{"enc": Encoder, "dec": Decoder, "dis": Discriminator}``."""
    nets = {"enc": Encoder(latent_dim, image_size), "dec": Decoder(latent_dim, image_size),
            "dis": Discriminator(image_size, lrelu_alpha)}
    if init_std:
        for net in nets.values():
            init_weights(net, init_std)
    return nets
