"""An identity network learned from nfgan's own labelled face sets: the second L_id network (issue #23 item 6).

L_id (eq. 6) with dlib's ResNet alone can be met by outputs that only dlib reads as the person: on London's 3/4
inputs dlib passed 92 % of an early model's outputs where the independent faceres passed 42 %. A second identity
network in the loss (``feature_nets.identity2``, weight ``loss.id2``) makes that harder: an output has to keep what
two unrelated networks see. The only face embedders we may ship beside dlib are human-models' faceres family
(faceres and faceres_deep share their origin and nearly their weights, and they are ``nfgan evaluate``'s
independent judges: a model trained against either would be judged by its own teacher) and its mobileface /
mobilefacenet (useless on our 64 px gray crops). So the second network is learned here, from the training people
of the labelled sets, never a validation or test person and never an evaluator.

Network (:class:`IdentityNet`): a small residual net on the generator's own 64 x 64 gray faces in [-1, 1] (a
stride-2 stem, four residual stages of ``width``, 2, 4, 8 x ``width`` channels down to 4 x 4, global mean) with a
linear embedding. ``forward`` returns ``[pooled, embedding]`` (``B x 8 width`` and the unit ``B x embed_dim``
vector), the "last two layers" that eq. (6) compares, as :class:`~nfgan.models.auxiliary.feature_nets.DlibIdentityNet`
does. :func:`fit` trains it as a classifier of the training people with a cosine-margin softmax (CosFace: the
target class's cosine lowered by ``margin``, all cosines scaled by ``scale``), on flipped, shifted and
photometrically changed faces, and keeps the epoch whose embedding best separates the *validation* people (lowest
equal error rate over all their pairs; :func:`verification`). ``tools/train_identity_net.py`` writes the file.
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
from nfgan.models.auxiliary.common import (FeatureNet, check_faces, flip_and_shift, read_tagged_safetensors,
                                           resize_faces)
from nfgan.weights import MissingWeightsError

#: safetensors metadata key of an identity net file
META_KEY = "nfgan_identity_net"
#: augmentation of :func:`fit` (``nfgan.data.photometric.photometric_params`` ranges; each step with prob. p)
AUGMENT = {"p": 0.5, "contrast": [0.6, 1.5], "brightness": 25.0, "gamma": [0.7, 1.4], "blur_sigma": 1.5,
           "noise_std": 6.0, "jpeg_quality": [25, 95]}


class IdentityNetError(ValueError):
    pass


class _Residual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                                  nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(cout))
        self.short = (nn.Identity() if cin == cout and stride == 1 else
                      nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.short(x))


class IdentityNet(FeatureNet):
    """``forward(x)``: ``B x 1 x H x W`` faces in [-1, 1] (resized to ``size``) -> ``[pooled, embedding]``.
    Frozen and in eval mode unless :func:`fit` trains it (it calls ``body.train()`` itself)."""

    name = "nfgan_identity"

    def __init__(self, width: int = 32, embed_dim: int = 128, size: int = 64, info: dict | None = None):
        super().__init__()
        w = int(width)
        self.width, self.embed_dim, self.size = w, int(embed_dim), int(size)
        self.body = nn.Sequential(
            nn.Conv2d(1, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),   # 32 x 32
            _Residual(w, w, 1), _Residual(w, 2 * w, 2), _Residual(2 * w, 4 * w, 2), _Residual(4 * w, 8 * w, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.embedding = nn.Linear(8 * w, self.embed_dim)
        self.info = dict(info or {})

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.body(resize_faces(x, self.size))
        return pooled, F.normalize(self.embedding(pooled), dim=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_faces(x, self.name)
        if x.shape[1] != 1:
            raise ValueError(f"{self.name}: expected gray faces B x 1 x H x W, got {tuple(x.shape)}")
        return list(self.features(x))

    def embed(self, faces_u8: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Unit embeddings (``N x embed_dim``) of uint8 ``N x S x S`` faces."""
        from nfgan.pixels import to_unit_batch

        faces_u8 = np.asarray(faces_u8, dtype=np.uint8)
        was = self.body.training
        self.body.eval()
        with torch.no_grad():
            out = [self.features(to_unit_batch(faces_u8[s:s + batch_size]))[1]
                   for s in range(0, len(faces_u8), batch_size)]
        self.body.train(was)
        return torch.cat(out).numpy() if out else np.zeros((0, self.embed_dim), np.float32)

    def save(self, path: str | Path, **info) -> Path:
        meta = {"width": self.width, "embed_dim": self.embed_dim, "size": self.size, **self.info, **info}
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_safetensors(Path(path), tensors, metadata={META_KEY: json.dumps(meta)})
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "IdentityNet":
        """An identity net file (:meth:`save`), frozen and in eval mode. Never unpickles anything."""
        path = Path(path)
        if not path.is_file():
            raise MissingWeightsError(f"{path}: no such identity net file (tools/train_identity_net.py writes one)")
        meta, tensors = read_tagged_safetensors(path, META_KEY, "an identity net file", IdentityNetError)
        try:
            net = cls(int(meta.get("width", 32)), int(meta.get("embed_dim", 128)), int(meta.get("size", 64)),
                      info=meta)
        except (ValueError, TypeError) as e:
            raise IdentityNetError(f"{path}: damaged {META_KEY!r} metadata ({e})") from None
        try:
            net.load_state_dict(tensors)
        except RuntimeError as e:
            raise IdentityNetError(f"{path}: weights do not fit the identity network "
                                   f"({str(e).splitlines()[0]})") from None
        return net.freeze()


# ---------------------------------------------------------------------------------------------------- training


def verification(emb: np.ndarray, people: Sequence[str]) -> dict:
    """Equal error rate, the distance threshold there, and the true-accept rate at a 1 % false-accept rate of unit
    embeddings ``emb`` over all pairs of faces (genuine: same person), by Euclidean distance."""
    emb = np.asarray(emb, dtype=np.float64)
    people = np.asarray(people)
    iu = np.triu_indices(len(emb), 1)
    d = np.sqrt(np.maximum(((emb[:, None, :] - emb[None, :, :]) ** 2).sum(-1), 0.0))[iu]
    same = (people[:, None] == people[None, :])[iu]
    if not same.any() or same.all():
        raise IdentityNetError("verification needs genuine and impostor pairs (two faces of one person, two people)")
    gen, imp = np.sort(d[same]), np.sort(d[~same])
    ts = np.unique(np.concatenate([gen, imp]))
    frr = 1.0 - np.searchsorted(gen, ts, side="right") / len(gen)     # genuine pairs farther than t
    far = np.searchsorted(imp, ts, side="right") / len(imp)           # impostor pairs within t
    k = int(np.argmin(np.abs(frr - far)))
    ok = far <= 0.01
    tar = float(1.0 - frr[ok].min()) if ok.any() else 0.0
    return {"eer": float((frr[k] + far[k]) / 2), "eer_threshold": float(ts[k]), "tar_at_far1": tar,
            "genuine": int(same.sum()), "impostor": int((~same).sum())}


def fit(faces: np.ndarray, people: Sequence[str], val_faces: np.ndarray, val_people: Sequence[str],
        epochs: int = 40, batch_size: int = 128, lr: float = 2e-3, width: int = 32, embed_dim: int = 128,
        scale: float = 30.0, margin: float = 0.35, seed: int = 0, progress: bool = False,
        augment: dict | None = None) -> tuple[IdentityNet, list[dict]]:
    """Train an identity net on uint8 ``N x 64 x 64`` faces of the training ``people`` (one label per face); the
    epoch kept is the one with the lowest equal error rate on the validation people's faces (none of them a
    training person). Returns the frozen net and one record per epoch."""
    from tqdm import tqdm

    from nfgan.data.photometric import photometric_augment, photometric_params
    from nfgan.pixels import to_unit_batch

    faces, val_faces = np.asarray(faces, dtype=np.uint8), np.asarray(val_faces, dtype=np.uint8)
    people, val_people = [str(p) for p in people], [str(p) for p in val_people]
    if faces.ndim != 3 or faces.shape[1] != faces.shape[2] or len(faces) != len(people):
        raise IdentityNetError(f"faces must be N x S x S with one person each, got {faces.shape} and {len(people)}")
    if set(people) & set(val_people):
        raise IdentityNetError(f"validation people are also training people: {sorted(set(people) & set(val_people))[:5]}")
    names = sorted(set(people))
    if len(names) < 2:
        raise IdentityNetError("fit needs at least two training people")
    y = np.asarray([names.index(p) for p in people], dtype=np.int64)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = IdentityNet(width, embed_dim, faces.shape[-1])
    classes = nn.Parameter(torch.randn(len(names), embed_dim) * 0.01)
    opt = torch.optim.Adam([*net.parameters(), classes], lr=lr, weight_decay=5e-4)
    steps = epochs * max(1, len(faces) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    aug = {**AUGMENT, **(augment or {})}
    best, best_state, history = None, None, []
    for epoch in tqdm(range(1, epochs + 1), desc="identity net", unit="epoch", disable=not progress):
        net.body.train()
        order = rng.permutation(len(faces))
        total, seen = 0.0, 0
        for s in range(0, len(order) - batch_size + 1, batch_size):   # full batches only (BatchNorm, schedule)
            rows = order[s:s + batch_size]
            batch = photometric_augment(flip_and_shift(faces[rows], rng), photometric_params(len(rows), rng, aug))
            _, emb = net.features(to_unit_batch(batch))
            cos = emb @ F.normalize(classes, dim=1).t()
            t = torch.as_tensor(y[rows])
            logits = scale * (cos - margin * F.one_hot(t, len(names)))
            loss = F.cross_entropy(logits, t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            total, seen = total + float(loss.detach()) * len(rows), seen + len(rows)
        rec = {"epoch": epoch, "train_loss": total / max(seen, 1),
               **{f"val_{k}": v for k, v in verification(net.embed(val_faces), val_people).items()}}
        history.append(rec)
        if best is None or rec["val_eer"] < best["val_eer"]:
            best = rec
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    net.info = {"epoch": best["epoch"], "val_eer": best["val_eer"], "val_tar_at_far1": best["val_tar_at_far1"],
                "people": len(names), "faces": len(faces)}
    return net.freeze(), history


__all__ = ["AUGMENT", "IdentityNet", "IdentityNetError", "fit", "verification"]
