"""Fixed auxiliary networks for the losses (paper Sec. 4.1 and 4.4), behind one small interface.

A ``FeatureNet`` is frozen, in eval mode, takes a batch of gray faces ``B x 1 x H x W`` in the generator's
range [-1, 1] and returns the list of feature maps that a loss compares (``B x C x h x w`` or ``B x C``).
Each implementation resizes / converts colour / normalises internally as its own weights need.
"""
from __future__ import annotations

import torch
from torch import nn


class FeatureNet(nn.Module):
    """Base class: frozen, eval-only network returning the feature maps a loss compares."""

    #: short name used in configs and logs
    name: str = "feature_net"

    def freeze(self) -> "FeatureNet":
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> "FeatureNet":  # always stays in eval mode (frozen BN statistics)
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - interface
        raise NotImplementedError
