"""An exponential moving average of the generator's weights (``train.ema_half_life``).

After every optimizer step each averaged tensor moves towards the live one: ``avg = b * avg + (1 - b) * live``
with ``b = 0.5 ** (1 / half_life)``, so a step's weights lose half their share in ``half_life`` steps. Every
floating-point entry of the state dict is averaged, BatchNorm's running statistics included; integer entries
(BatchNorm's step counters) are copied. Only the model's inference networks (``GENERATOR``) are averaged: the
discriminator trains against the live generator.

Checkpoints store the averages as networks named ``ema_<name>`` (``EMA_PREFIX``) beside the live ones, and
``nfgan.inference.load_model`` uses them when a file has them: a run with an average ships its average. A run
resumed from a checkpoint without averages (a second stage started from a first stage's checkpoint) starts the
average from the weights it resumes from; the step it started at is recorded in the checkpoint's extra
(``ema_since``).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from nfgan.checkpoint import EMA_PREFIX, with_fixed_buffers


def ema_decay(half_life: float) -> float:
    """The per-step decay ``b`` whose weight halves in ``half_life`` steps (``half_life`` > 0)."""
    if not half_life > 0:
        raise ValueError(f"half_life must be > 0 steps, got {half_life}")
    return 0.5 ** (1.0 / float(half_life))


class WeightAverage:
    """The moving average of ``nets`` (name -> live network). ``nets`` are copied now; ``update`` folds the
    live weights in after each step; ``since`` is the training step the average started from."""

    def __init__(self, nets: dict[str, nn.Module], half_life: float, since: int = 0):
        self.decay = ema_decay(half_life)
        self.nets = {name: copy.deepcopy(net).requires_grad_(False).eval() for name, net in nets.items()}
        self.since = int(since)
        # (averaged, live) tensor pairs: a state dict's tensors share storage with the modules' own
        self._pairs = []
        for name, net in self.nets.items():
            live = nets[name].state_dict()
            self._pairs += [(avg, live[key]) for key, avg in net.state_dict().items()]

    @torch.no_grad()
    def update(self) -> None:
        """Fold the live weights in: one step of the average."""
        w = 1.0 - self.decay
        for avg, live in self._pairs:
            if avg.is_floating_point():
                avg.lerp_(live.to(avg.dtype), w)
            else:
                avg.copy_(live)

    @torch.no_grad()
    def restart(self, since: int) -> None:
        """Start the average again from the live weights (at training step ``since``)."""
        for avg, live in self._pairs:
            avg.copy_(live)
        self.since = int(since)

    def load(self, states: dict[str, dict[str, torch.Tensor]], since: int) -> None:
        """The averages a checkpoint stored (``states``: name -> state dict)."""
        for name, net in self.nets.items():
            net.load_state_dict(with_fixed_buffers(net, states[name]))
        self.since = int(since)

    def checkpoint_nets(self) -> dict[str, nn.Module]:
        """The averaged networks under their checkpoint names."""
        return {EMA_PREFIX + name: net for name, net in self.nets.items()}


__all__ = ["WeightAverage", "ema_decay"]
