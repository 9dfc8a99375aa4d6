"""An expression critic trained on nfgan's own labelled face sets, for the expression lever (``loss.neutral``).

The lever's first critic, human-models' mini-Xception (:mod:`nfgan.models.auxiliary.expression_faceapi`), learned
FER-2013's web photos. On the default normaliser's outputs it is sure of "neutral" where face-api still sees
sadness (CK+ training people's sad inputs: its p_neutral 0.80 on average, face-api calls 63 % of the outputs
neutral), so ``-log p_neutral`` has no gradient left to give there. This critic learns the expressions of the
labelled sets' *training people* (London, canada, CK+ ``with_neutral/``, JAFFE, Yale; never a validation or test
person, never one of ``nfgan evaluate``'s judges) and joins the first one in the loss
(``loss.neutral_critics``).

Network: the plain trunk of nfgan's FER net (:class:`nfgan.fer.model.FERNet`, four conv blocks, ~0.3 M
parameters) on the generator's 64 x 64 gray faces in [-1, 1], softmax over :data:`CLASSES` (nfgan's expression
vocabulary; contempt has its own class). :func:`fit` trains it with class-balanced cross-entropy on flipped,
shifted and photometrically changed faces (Adam, cosine learning rate) (``nfgan.data.photometric``: blur, noise, JPEG, contrast, gamma - a
generator's output is smoother than a photo) and keeps the epoch with the lowest validation loss.
``tools/train_neutral_critic.py`` makes the file nfgan ships (``assets/neutral_critic.safetensors``; it learned
CK+, JAFFE and Yale faces: **non-commercial research use only**).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nfgan.atomic import save_safetensors
from nfgan.data.schema import EXPRESSIONS
from nfgan.fer.model import FERNet
from nfgan.models.auxiliary.common import flip_and_shift, read_tagged_safetensors
from nfgan.weights import MissingWeightsError, assets_dir

#: the critic's classes, in output order (nfgan's shared vocabulary)
CLASSES: tuple[str, ...] = tuple(EXPRESSIONS)
#: safetensors metadata key of a critic file
META_KEY = "nfgan_neutral_critic"
SHIPPED_NAME = "neutral_critic.safetensors"
#: augmentation of :func:`fit` (``nfgan.data.photometric.photometric_params`` ranges; each step with prob. p)
AUGMENT = {"p": 0.5, "contrast": [0.6, 1.5], "brightness": 25.0, "gamma": [0.7, 1.4], "blur_sigma": 1.5,
           "noise_std": 6.0, "jpeg_quality": [25, 95]}


class CriticError(ValueError):
    pass


def shipped_critic_path() -> Path:
    return assets_dir() / SHIPPED_NAME


def class_of(label: str) -> int | None:
    """The critic class of a prepared set's expression label: Yale's ``neutral_*`` lighting and glasses
    variants are neutral; labels outside the vocabulary (Yale's ``sleepy``, ``wink``) give ``None``."""
    label = str(label)
    if label.startswith("neutral"):
        return 0
    return CLASSES.index(label) if label in CLASSES else None


class NeutralCritic(nn.Module):
    """Frozen-by-default expression classifier: ``forward(x)`` takes ``B x 1 x 64 x 64`` faces in [-1, 1] and
    returns ``B x len(CLASSES)`` probabilities (differentiable); ``labels`` names the columns."""

    def __init__(self, width: int = 16, size: int = 64, info: dict | None = None):
        super().__init__()
        self.net = FERNet(len(CLASSES), width=int(width), input_size=int(size), trunk="plain")
        self.width, self.size = int(width), int(size)
        self.labels = CLASSES
        self.info = dict(info or {})

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=1)

    def freeze(self) -> "NeutralCritic":
        self.requires_grad_(False)
        return self.eval()

    def save(self, path: str | Path, **info) -> Path:
        meta = {"classes": list(CLASSES), "width": self.width, "size": self.size, **self.info, **info}
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        save_safetensors(Path(path), tensors, metadata={META_KEY: json.dumps(meta)})
        return Path(path)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "NeutralCritic":
        """A critic file (:meth:`save`); ``None`` = the one nfgan ships. Frozen, in eval mode."""
        path = Path(path) if path is not None else shipped_critic_path()
        if not path.is_file():
            hint = " (run tools/train_neutral_critic.py)" if path == shipped_critic_path() else ""
            raise MissingWeightsError(f"{path}: no such expression critic file{hint}")
        meta, tensors = read_tagged_safetensors(path, META_KEY, "an expression critic file", CriticError)
        if list(meta.get("classes", [])) != list(CLASSES):
            raise CriticError(f"{path}: classes {meta.get('classes')} are not nfgan's {list(CLASSES)}")
        critic = cls(meta.get("width", 16), meta.get("size", 64), info=meta)
        try:
            critic.net.load_state_dict(tensors)
        except RuntimeError as e:
            raise CriticError(f"{path}: weights do not fit the critic network ({str(e).splitlines()[0]})") from None
        return critic.freeze()


def _balanced_weights(y: np.ndarray) -> torch.Tensor:
    """Class weights giving neutral faces half of the loss and each present expression an equal share of the
    other half (a sample-weighted mean of 1), so that the critic is neither biased towards the expressions,
    which outnumber neutral seven to one as classes, nor towards neutral, the most common face."""
    counts = np.bincount(y, minlength=len(CLASSES)).astype(np.float64)
    n_expr = max(int((counts[1:] > 0).sum()), 1)
    share = np.where(counts > 0, np.r_[0.5, np.full(len(CLASSES) - 1, 0.5 / n_expr)], 0.0)
    w = np.where(counts > 0, share / np.maximum(counts, 1), 0.0) * counts.sum()
    return torch.tensor(w, dtype=torch.float32)


def evaluate(critic: NeutralCritic, faces: np.ndarray, y: np.ndarray, batch_size: int = 256) -> dict:
    """Class-balanced cross-entropy, accuracy, and neutral-vs-expressive accuracy of ``critic`` on uint8 faces."""
    from nfgan.pixels import to_unit_batch

    critic.eval()
    with torch.no_grad():
        logits = torch.cat([critic.logits(to_unit_batch(faces[s:s + batch_size]))
                            for s in range(0, len(faces), batch_size)])
    t = torch.as_tensor(y, dtype=torch.long)
    pred = logits.argmax(1).numpy()
    loss = float(F.cross_entropy(logits, t, weight=_balanced_weights(y)))
    return {"loss": loss, "accuracy": float(np.mean(pred == y)),
            "neutral_accuracy": float(np.mean((pred == 0) == (y == 0))), "n": int(len(y))}


def fit(faces: np.ndarray, y: Sequence[int], val_faces: np.ndarray, val_y: Sequence[int], epochs: int = 60,
        batch_size: int = 64, lr: float = 1e-3, width: int = 16, seed: int = 0, progress: bool = False,
        augment: dict | None = None) -> tuple[NeutralCritic, list[dict]]:
    """Train a critic on uint8 ``N x 64 x 64`` faces with class indices ``y`` (:data:`CLASSES`); returns the
    weights of the epoch with the lowest validation loss (frozen) and one record per epoch."""
    from tqdm import tqdm

    from nfgan.data.photometric import photometric_augment, photometric_params
    from nfgan.pixels import to_unit_batch

    faces, val_faces = np.asarray(faces, dtype=np.uint8), np.asarray(val_faces, dtype=np.uint8)
    y, val_y = np.asarray(y, dtype=np.int64), np.asarray(val_y, dtype=np.int64)
    if faces.ndim != 3 or faces.shape[1] != faces.shape[2] or len(faces) != len(y):
        raise CriticError(f"faces must be N x S x S with one label each, got {faces.shape} and {len(y)} labels")
    if len(val_faces) == 0:
        raise CriticError("fit needs validation faces to choose its epoch")
    if y.min() < 0 or y.max() >= len(CLASSES) or not (y == 0).any() or not (y != 0).any():
        raise CriticError("labels must be class indices of CLASSES with both neutral and expressive faces")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    critic = NeutralCritic(width, faces.shape[-1])
    opt = torch.optim.Adam(critic.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    weight = _balanced_weights(y)
    aug = {**AUGMENT, **(augment or {})}
    best, best_state, history = None, None, []
    for epoch in tqdm(range(1, epochs + 1), desc="critic", unit="epoch", disable=not progress):
        critic.train()
        order = rng.permutation(len(faces))
        total = 0.0
        for s in range(0, len(order), batch_size):
            rows = order[s:s + batch_size]
            if len(rows) < 2:      # BatchNorm needs two faces
                continue
            batch = photometric_augment(flip_and_shift(faces[rows], rng), photometric_params(len(rows), rng, aug))
            loss = F.cross_entropy(critic.logits(to_unit_batch(batch)), torch.as_tensor(y[rows]), weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(rows)
        schedule.step()
        rec = {"epoch": epoch, "train_loss": total / len(order),
               **{f"val_{k}": v for k, v in evaluate(critic, val_faces, val_y).items()}}
        history.append(rec)
        if best is None or rec["val_loss"] < best["val_loss"]:
            best = rec
            best_state = {k: v.clone() for k, v in critic.state_dict().items()}
    critic.load_state_dict(best_state)
    critic.info = {"epoch": best["epoch"], "val_loss": best["val_loss"], "val_accuracy": best["val_accuracy"],
                   "val_neutral_accuracy": best["val_neutral_accuracy"]}
    return critic.freeze(), history


__all__ = ["CLASSES", "AUGMENT", "CriticError", "NeutralCritic", "class_of", "evaluate", "fit",
           "shipped_critic_path"]
