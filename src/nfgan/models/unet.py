"""The pix2pix networks (Isola et al. 2017) at 64 px: a U-Net generator and a conditional PatchGAN discriminator.

* ``UNetGenerator``: six stride-2 4x4 convolutions (64 -> 1 px; C ngf, 2ngf, 4ngf, 8ngf, 8ngf, 8ngf with
  channels capped at ``max_channels``), LeakyReLU(0.2), BatchNorm except on the first and innermost layers; six
  stride-2 4x4 transposed convolutions back to 64 px with ReLU, BatchNorm and a skip connection (channel
  concatenation) from the mirrored encoder layer; dropout 0.5 on the three innermost decoder layers in
  training; Tanh output in [-1, 1].
* ``PatchDiscriminator``: conditional, on the channel pair (input x, candidate); C ndf (no BN), 2ndf, 4ndf with
  stride 2, 8ndf with stride 1, then a 1-map stride-1 conv: a 6x6 map of patch logits for 64x64 input (each
  logit sees a 70x70 receptive field cut to the image - for 64px faces this is close to the whole face, as
  pix2pix's 70x70 patch on 256px images is not; we keep the paper's layer recipe).
"""
from __future__ import annotations

import math

import torch
from torch import nn


class UNetGenerator(nn.Module):
    """U-Net for ``B x 1 x S x S`` faces in [-1, 1] -> ``B x 1 x S x S`` in [-1, 1] (S a power of two >= 8).

    ``depth = log2(S)`` stride-2 downsamplings reach a 1x1 bottleneck (6 for 64 px)."""

    def __init__(self, image_size: int = 64, ngf: int = 32, max_channels: int = 256, dropout: float = 0.5,
                 in_channels: int = 1, out_channels: int = 1):
        super().__init__()
        depth = int(round(math.log2(image_size)))
        if 2 ** depth != image_size or depth < 3:
            raise ValueError(f"UNetGenerator needs a power-of-two image size >= 8, got {image_size}")
        chans = [min(ngf * 2 ** min(i, 3), max_channels) for i in range(depth)]
        self.down = nn.ModuleList()
        cin = in_channels
        for i, c in enumerate(chans):
            layers: list[nn.Module] = []
            if i > 0:
                layers.append(nn.LeakyReLU(0.2, inplace=False))
            layers.append(nn.Conv2d(cin, c, 4, stride=2, padding=1, bias=i in (0, depth - 1)))
            if 0 < i < depth - 1:
                layers.append(nn.BatchNorm2d(c))
            self.down.append(nn.Sequential(*layers))
            cin = c
        self.up = nn.ModuleList()
        for i in reversed(range(depth)):          # up[k] undoes down[i], i = depth-1 .. 0
            innermost, outermost = i == depth - 1, i == 0
            c_in = chans[i] if innermost else 2 * chans[i]
            c_out = out_channels if outermost else chans[i - 1]
            layers = [nn.ReLU(inplace=False),
                      nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=outermost)]
            if outermost:
                layers.append(nn.Tanh())
            else:
                layers.append(nn.BatchNorm2d(c_out))
                if dropout > 0 and i >= depth - 3:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for d in self.down:
            h = d(h)
            skips.append(h)
        h = self.up[0](skips[-1])
        for k, u in enumerate(self.up[1:], start=2):
            h = u(torch.cat([h, skips[-k]], dim=1))
        return h


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN: logits ``B x 1 x h x w`` for the pair (x, candidate), each ``B x 1 x S x S``."""

    def __init__(self, ndf: int = 32, n_layers: int = 3, in_channels: int = 2, max_channels: int = 512):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        c = ndf
        for i in range(1, n_layers + 1):
            c_next = min(ndf * 2 ** i, max_channels)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(c, c_next, 4, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_next),
                       nn.LeakyReLU(0.2, True)]
            c = c_next
        layers.append(nn.Conv2d(c, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, candidate], dim=1))
