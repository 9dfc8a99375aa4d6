"""The generator-model contract: what a trainable model states, in one place.

A model (``nfgan.models.nfgan.NFGANModel``, ``nfgan.models.pix2pix.Pix2PixModel``) declares

* ``NETS``: its networks by name (all are checkpointed), ``GENERATOR``: the ones inference needs (exported);
* ``LOSSES``: the losses it logs, in order, and ``PROGRESS``: the few always shown on the progress bar (any other
  loss with a weight above 0 in the run's config is shown too, and none weighted 0: ``progress_keys()``), and
  ``WEIGHT_OF``: a logged loss -> its weight key in the ``loss`` section, where the two names differ;
* ``OPTIMIZERS``: network name -> its ``optim`` config section;
* ``schema()``: its config sections (``model``, ``loss`` with each loss's weight, ``optim``, ``feature_nets``);
* ``build_generator(model_cfg)``: the inference networks, untrained (used by ``nfgan.inference``);

and builds, in ``__init__(cfg, device, data)``, its frozen feature losses (``frozen_features``), then its
networks (``nets``, right after the RNG is seeded) and their optimizers (``optimizers``);

and implements ``compute_losses(batch)`` (every loss of one step, graphs kept), ``backward(losses)`` (which
network learns from which loss) and ``generate(x)``. The training loop (``nfgan.training``) is the same for
every model: sample a batch, compute the losses, check they are finite, zero the gradients, ``backward``, step
every optimizer, log, sample, checkpoint.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from nfgan.config import nonneg, opt, positive


@dataclass
class Batch:
    """One training batch: dataset rows and the tensors the generator and the losses read."""

    x_rows: np.ndarray       # input rows (mirror rows where the input rule mirrors)
    y_rows: np.ndarray       # target rows
    g_rows: np.ndarray       # guiding rows (real faces for NFGAN's discriminator)
    x: torch.Tensor          # the generator's input (frontalised rows where the input rule frontalises)
    y: torch.Tensor          # the targets
    g: torch.Tensor          # the guiding faces
    y_mask: torch.Tensor | None = None   # B x 1 x S x S, 0 where a target pixel is an empty frame (None: all count)
    mixed: np.ndarray | None = None      # bool B: rows made by identity mixing (their faces are not their rows')
    x_real: torch.Tensor | None = None   # the mixed rows' real inputs (before photometric changes), for L_id


def adam_schema(lr: float = 2.0e-4) -> dict:
    """The config section of one Adam optimizer."""
    return {"lr": positive(lr), "betas": opt([0.5, 0.999], "list[float]", length=2, low=0, high=1),
            "weight_decay": nonneg(0.0)}


class GeneratorModel:
    """Base of the trainable generator models (see the module doc for the contract)."""

    TYPE: ClassVar[str] = ""
    NETS: ClassVar[tuple[str, ...]] = ()
    GENERATOR: ClassVar[tuple[str, ...]] = ()
    LOSSES: ClassVar[tuple[str, ...]] = ()
    PROGRESS: ClassVar[tuple[str, ...]] = ()
    WEIGHT_OF: ClassVar[dict[str, str]] = {}
    OPTIMIZERS: ClassVar[dict[str, str]] = {}

    nets: dict[str, nn.Module]

    @classmethod
    def schema(cls) -> dict:
        """The model's config sections: ``model``, ``loss``, ``optim`` (and ``feature_nets``)."""
        raise NotImplementedError

    @staticmethod
    def build_generator(model_cfg: dict) -> dict[str, nn.Module]:
        raise NotImplementedError

    def __init__(self, cfg: dict, device: torch.device):
        self.cfg = cfg
        self.device = device
        self.weights = dict(cfg["loss"])
        self.bf16 = bool(cfg["train"]["bf16"])
        self.channels_last = bool(cfg["train"]["channels_last"])

    # -- shared machinery
    def place(self, net: nn.Module) -> nn.Module:
        net.to(self.device)
        if self.channels_last:
            net.to(memory_format=torch.channels_last)
        return net

    def frozen_features(self, data, nets: dict | None = None):
        """The frozen auxiliary nets of L_feat / L_id with their cached features (``FeatureLosses``), then the
        torch RNG seeded again: a model builds its trainable networks right after this, so their initial
        weights and the random stream of training (dropout) depend on the seed alone, not on what building the
        auxiliary nets drew."""
        from nfgan.models.feature_losses import FeatureLosses

        features = FeatureLosses(self, data, nets)
        torch.manual_seed(int(self.cfg["seed"]))
        return features

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        o = self.cfg["optim"]
        return {name: torch.optim.Adam(self.nets[name].parameters(), lr=o[src]["lr"], betas=tuple(o[src]["betas"]),
                                       weight_decay=o[src]["weight_decay"])
                for name, src in self.OPTIMIZERS.items()}

    def autocast(self):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def train_mode(self, on: bool = True) -> None:
        for net in self.nets.values():
            net.train(on)

    def progress_keys(self) -> tuple[str, ...]:
        """The losses the progress bar shows, in ``LOSSES`` order: those of ``PROGRESS`` and every other loss the
        run weights above 0; a loss whose weight (``WEIGHT_OF``) is 0 in the config is left off (it is still logged)."""
        def used(k: str) -> bool:
            return float(self.weights.get(self.WEIGHT_OF.get(k, k), 1.0)) > 0

        return tuple(k for k in self.LOSSES
                     if used(k) and (k in self.PROGRESS or k in self.weights))

    def info(self) -> dict:
        """What a checkpoint records to rebuild the generator: the ``model`` config section."""
        return dict(self.cfg["model"])

    # -- the contract
    def generate(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def compute_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def backward(self, losses: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def visuals(self, x: torch.Tensor) -> torch.Tensor:
        """The outputs shown in sample grids (eval mode; input and target columns come from the data)."""
        self.train_mode(False)
        with self.autocast():
            return self.generate(x)
