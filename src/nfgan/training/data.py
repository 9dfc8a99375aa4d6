"""The training data of one run: the prepared faces in memory, the (input, target) pairs of the train and
validation subjects, and the batches the models read.

Rows ``0..n-1`` are the prepared faces; with mirroring (``data.flip_left_poses`` or ``data.mirror_pairs``) rows
``n..2n-1`` are their mirror images; with ``data.frontalize_inputs`` the frontalised version of every turned
input (and same-pose target) row is appended after those, and ``gen_rows[r]`` is the row the generator reads for
input row ``r``. The mirroring and frontalisation follow ``nfgan.data.generator_input.InputRule``, the rule
inference applies too.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from nfgan.config import ConfigError
from nfgan.data.dataset import PreparedDataset
from nfgan.data.frontalize import is_turned
from nfgan.data.generator_input import InputRule, MissingLandmarksError
from nfgan.data.pairs import build_pairs, load_splits
from nfgan.models.base import Batch
from nfgan.pixels import to_unit_batch


class TrainingData:
    def __init__(self, cfg: dict, device: torch.device):
        d = cfg["data"]
        self.cfg, self.device = cfg, device
        self.channels_last = bool(cfg["train"]["channels_last"])
        self.rule = InputRule.from_config(cfg)
        self.dataset = PreparedDataset(d["root"])
        size = cfg["model"]["image_size"]
        if self.dataset.size != size:
            raise ConfigError(f"{self.dataset.root}: faces are {self.dataset.size}px but model.image_size is {size}")
        images = torch.from_numpy(np.array(self.dataset.images))  # in memory, writable
        n = len(images)
        mirrors = d["flip_left_poses"] or d["mirror_pairs"]
        self.images = torch.cat([images, images.flip(-1)]) if mirrors else images
        self.splits = load_splits(d["splits"])
        kw = dict(input_poses=d["input_poses"], input_expressions=d["input_expressions"],
                  target_pose=d["target_pose"], target_expression=d["target_expression"],
                  turned_targets=d["turned_targets"])
        self.train = build_pairs(self.dataset, self.splits["train"], **kw)
        self.val = build_pairs(self.dataset, self.splits["val"], **kw)
        if len(self.train) == 0:
            raise ConfigError(f"{self.dataset.root}: no training pairs (train subjects with a "
                              f"{d['target_pose']} {d['target_expression']} face and inputs)")
        self._mirror_rows(n)
        self.missing_targets = sorted(set(self.train.missing_targets) | set(self.val.missing_targets))
        if self.missing_targets:
            m = self.missing_targets
            warnings.warn(f"{len(m)} subject(s) have no {d['target_pose']} {d['target_expression']} face "
                          f"(or no same-pose target, listed with the pose) and are not trained on: "
                          f"{m[:10]}{' ...' if len(m) > 10 else ''}")
        self.gen_rows = np.arange(len(self.images), dtype=np.int64)
        if self.rule.frontalize:
            self._add_frontalized_rows(n)
        if device.type != "cpu":
            self.images = self.images.to(device)
        # fixed sample batch: spread over the validation inputs (training inputs when there is no val split)
        src = self.val if len(self.val) else self.train
        k = min(int(cfg["log"]["sample_count"]), len(src))
        pick = np.linspace(0, len(src) - 1, k).round().astype(np.int64)
        self.sample_rows = (src.inputs[pick], src.first_targets()[pick])

    @property
    def train_subjects(self) -> list[str]:
        return sorted({str(s) for s in self.splits["train"]})

    def _mirror_rows(self, n: int) -> None:
        """Point mirrored inputs at their mirror rows (row r + n): the input rule's mirroring, and
        ``data.mirror_pairs`` (mirrored frontal pairs, input and target together). Frontal targets are never
        mirrored; a same-pose target is mirrored with its input."""
        d = self.cfg["data"]
        poses = self.dataset.column("pose")
        if self.rule.flip_left_poses:
            swap = self.rule.mirror_mask(poses, self.dataset.column("flipped"))
            swap_target = swap & (np.asarray(poses) != d["target_pose"])
            for pairs in (self.train, self.val):
                pairs.inputs += np.where(swap[pairs.inputs], n, 0)
                pairs.target_choices = [c + np.where(swap_target[c], n, 0) for c in pairs.target_choices]
        if d["mirror_pairs"]:   # validation pairs stay as they are
            self.train = self.train.with_mirrors(
                np.asarray([i < n and poses[i] == "frontal" for i in self.train.inputs]), n)

    def _add_frontalized_rows(self, n: int) -> None:
        """Append the frontalised version of every turned input or target row (a mirror row r >= n is face
        r - n mirrored), point ``gen_rows`` at it and the pairs' turned targets too."""
        lms = self.dataset.landmarks
        if lms is None:
            raise ConfigError(f"{self.dataset.root}: data.frontalize_inputs needs landmarks.npy (written by nfgan prepare)")
        poses = self.dataset.column("pose")
        used = [r for pairs in (self.train, self.val) for r in (pairs.inputs, *pairs.target_choices)]
        rows = sorted({int(r) for r in np.concatenate(used) if is_turned(poses[int(r) % n])}) if used else []
        if not rows:
            return
        face = [r % n for r in rows]
        try:
            faces = self.rule.frontalize_turned(
                self.images[rows].numpy(), [poses[i] for i in face], np.asarray(lms[face], np.float64),
                mirrored=[r >= n for r in rows], who=str(self.dataset.root), strict=True)
        except MissingLandmarksError as e:
            raise ConfigError(str(e)) from None
        self.gen_rows[rows] = len(self.images) + np.arange(len(rows))
        self.gen_rows = np.concatenate([self.gen_rows, len(self.images) + np.arange(len(rows))])
        self.images = torch.cat([self.images, torch.from_numpy(faces)])
        # turned (same-pose) targets are read frontalised, like the inputs; input rows stay real (L_id)
        for pairs in (self.train, self.val):
            pairs.target_choices = [self.gen_rows[c] for c in pairs.target_choices]

    # -- batches
    def rows(self, rows: np.ndarray) -> torch.Tensor:
        """Faces of dataset rows as a network batch on the device."""
        x = to_unit_batch(self.images[torch.from_numpy(rows).to(self.images.device)]).to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def generator_rows(self, x_rows: np.ndarray) -> torch.Tensor:
        """What the generator reads for input rows ``x_rows``."""
        return self.rows(self.gen_rows[x_rows])

    def sample(self, batch_size: int, sampler: torch.Generator) -> Batch:
        x_rows, y_rows = self.train.sample(batch_size, sampler)
        g_rows = self.train.sample_guides(batch_size, sampler)
        return Batch(x_rows, y_rows, g_rows, self.generator_rows(x_rows), self.rows(y_rows), self.rows(g_rows))
