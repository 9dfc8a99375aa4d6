"""NFGAN augmentation for FER (paper Sec. 5.4) and the guard that keeps test subjects out of it.

Each training subject's normalised faces (NFGAN outputs for that subject's *training* images) join the
fold's training set as same-identity neutral references:

* 7-class label sets without a neutral class (CK+ peak): they enter only the metric branch, as negatives
  for every query expression (label ``REFERENCE_ONLY``); identity-aware mining prefers them because they
  share the positives' identity;
* label sets with a neutral class (JAFFE 7 classes): they are also ordinary ``neutral`` samples for the
  softmax branch and can be positives of the neutral query.

Sources (``--augment``):
* an NFGAN checkpoint, run folder or exported model (or any other generator ``nfgan.inference.load_model``
  reads, e.g. the pix2pix U-Net of ``configs/pix2pix_lid.yaml``): its ``normalize`` (with the model's
  mirroring rule) is run once on all faces of the FER dataset and cached in the run dir
  (``augment_faces.npy``); each fold then uses the rows of its training subjects only. The FER folder's
  ``landmarks.npy``, when it has one, goes with the faces, so a model whose input rule frontalises or
  re-frames faces (the shipped default) makes the references ``nfgan normalize --data`` makes; a folder without
  landmarks (``nfgan fer precropped``) gets the faces as they are, with the rule's warning;
* a prepared folder of already-normalised faces (``manifest.csv`` + ``faces.npy``, ``subject`` column in the
  FER dataset's ids; an optional ``source_id`` column names the FER row each face was made from).

Leak guard: the NFGAN model must never have seen a test-fold subject. Its training subjects are read from the
checkpoint (``train_subjects`` in the ``extra`` part of ``nfgan.checkpoint``'s safetensors metadata, in a
torch state dict, in an exported model file's metadata (``export_model`` keeps a checkpoint's list and adds the
people its input rule's maps were fit on), or a ``train_subjects.json`` beside it / in the run dir;
failing those, the train + val subjects of the split file named in the checkpoint's resolved trainer config), from
the folder's ``normalize_meta.json`` / ``train_subjects.json``, or from ``--augment-subjects FILE``. Unknown
training subjects or any overlap with a fold's test subjects stop the run with ``AugmentLeakError``.
A London-trained NFGAN never saw a CK+ or JAFFE subject, which is the simple compliant choice.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np

from nfgan.atomic import atomic_open, write_text
from nfgan.rundir import RunDir


class AugmentLeakError(RuntimeError):
    """The augmenting NFGAN saw (or may have seen) a subject of the fold being tested."""


def _subjects_from_obj(obj) -> list[str] | None:
    if isinstance(obj, dict):
        for key in ("train_subjects", "training_subjects"):
            if obj.get(key) is not None:
                val = obj[key]
                if isinstance(val, str):
                    val = json.loads(val)
                return [str(s) for s in val]
        for key in ("nfgan", "nfgan_model", "extra", "meta", "state", "metadata", "config"):
            val = obj.get(key)
            if isinstance(val, str) and val.lstrip().startswith("{"):   # JSON metadata (nfgan.checkpoint)
                try:
                    val = json.loads(val)
                except json.JSONDecodeError:
                    continue
            if isinstance(val, dict):
                found = _subjects_from_obj(val)
                if found is not None:
                    return found
    return None


def _subjects_from_trainer_splits(meta: dict) -> list[str] | None:
    """Fallback for ``nfgan train`` checkpoints that record no subject list: the split file named in the
    resolved config (``extra.config.data.splits``); its ``train`` and ``val`` subjects are taken (val faces
    are only looked at, but counting them keeps the check conservative)."""
    try:
        nf = meta.get("nfgan")
        nf = json.loads(nf) if isinstance(nf, str) else nf
        splits = nf["extra"]["config"]["data"]["splits"]
    except (KeyError, TypeError, json.JSONDecodeError):
        return None
    repo = Path(__file__).resolve().parents[3]
    for cand in (Path(splits), Path.cwd() / splits, repo / splits):
        if cand.is_file():
            doc = json.loads(cand.read_text(encoding="utf-8"))
            return [str(x) for key in ("train", "val") for x in doc.get(key, [])]
    return None


def read_subjects_file(path: str | Path) -> list[str]:
    """A JSON list / JSON object with ``train_subjects``, or plain text with one subject per line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: subjects file not found")
    text = path.read_text(encoding="utf-8")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if isinstance(obj, list):
        return [str(s) for s in obj]
    found = _subjects_from_obj(obj)
    if found is None:
        raise ValueError(f"{path}: JSON has no 'train_subjects' list")
    return found


def recorded_train_subjects(source: str | Path) -> list[str] | None:
    """The subjects an NFGAN checkpoint (file or run dir) / normalised-face folder was trained on, if recorded."""
    source = Path(source)
    candidates = []
    if source.is_dir():
        candidates += [source / "train_subjects.json", source / "normalize_meta.json", source / "meta.json"]
        ckpts = RunDir(source).checkpoints()   # an `nfgan train` run dir
        if ckpts:
            found = recorded_train_subjects(ckpts[-1])
            if found is not None:
                return found
    else:
        candidates += [source.parent / "train_subjects.json", source.parent.parent / "train_subjects.json"]
        if source.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(source), framework="pt") as f:
                meta = f.metadata() or {}
            found = _subjects_from_obj(meta)
            if found is None:
                found = _subjects_from_trainer_splits(meta)
            if found is not None:
                return found
        elif source.suffix in (".pt", ".pth", ".ckpt"):
            import torch

            try:
                state = torch.load(source, map_location="cpu", weights_only=True)
            except Exception:  # not loadable safely -> not trusted; fall back to side files
                state = None
            found = _subjects_from_obj(state)
            if found is not None:
                return found
    for c in candidates:
        if c.is_file():
            try:
                return read_subjects_file(c)
            except ValueError:
                continue
    return None


def check_no_leak(train_subjects: Iterable[str] | None, test_subjects: Iterable[str], source: str,
                  fold: int | None = None) -> None:
    """Refuse when the augmenting model's training subjects are unknown or meet the fold's test subjects."""
    where = f"fold {fold}" if fold is not None else "the test fold"
    if train_subjects is None:
        raise AugmentLeakError(
            f"{source}: the subjects this NFGAN was trained on are not recorded, so it cannot be shown that it "
            f"never saw a subject of {where}; pass --augment-subjects FILE (one subject id per line)")
    leak = sorted(set(map(str, train_subjects)) & set(map(str, test_subjects)))
    if leak:
        raise AugmentLeakError(
            f"{source}: NFGAN was trained on {len(leak)} subject(s) of {where} ({', '.join(leak[:10])}"
            f"{' ...' if len(leak) > 10 else ''}); its outputs would leak test identities into training. "
            f"Use an NFGAN trained without these subjects (e.g. on London).")


class AugmentSource:
    """Normalised faces per FER-dataset subject, from a checkpoint or a prepared folder (module doc)."""

    def __init__(self, source: str | Path, subjects_file: str | Path | None = None):
        """Only reads which subjects the NFGAN saw (cheap), so the leak guard runs before ``load``."""
        self.source = Path(source)
        if not self.source.exists():
            raise FileNotFoundError(f"{self.source}: --augment source not found")
        self.train_subjects = (read_subjects_file(subjects_file) if subjects_file
                               else recorded_train_subjects(self.source))
        self.faces: np.ndarray | None = None
        self.subjects: list[str] = []

    def load(self, dataset, cache_dir: str | Path | None = None) -> "AugmentSource":
        """Read the folder's faces, or run the checkpoint's normaliser on every face of ``dataset``."""
        if self.source.is_dir() and (self.source / "manifest.csv").is_file():
            from nfgan.data.dataset import PreparedDataset

            ds = PreparedDataset(self.source)
            self.faces = np.asarray(ds.images, dtype=np.uint8)
            self.subjects = ds.column("subject")
        else:
            self.faces = self._normalize_dataset(dataset, cache_dir)
            self.subjects = dataset.column("subject")
        return self

    def _normalize_dataset(self, dataset, cache_dir) -> np.ndarray:
        cache = Path(cache_dir) / "augment_faces.npy" if cache_dir else None
        landmarks = getattr(dataset, "landmarks", None)     # the prepared folder's landmarks.npy, when it has one
        stamp = {**self._stamp(), "landmarks": landmarks is not None}
        stamp_file = cache.with_suffix(".json") if cache is not None else None
        if cache is not None and cache.is_file() and stamp_file.is_file():
            faces = np.load(cache)
            if len(faces) == len(dataset) and json.loads(stamp_file.read_text()) == stamp:
                return faces
        from nfgan.inference import load_model

        images = np.array(dataset.images, dtype=np.uint8)   # writable copy (torch warns on read-only maps)
        generator = load_model(self.source)             # NFGAN or another kind (the pix2pix U-Net)
        poses = dataset.column("pose") if "pose" in dataset.records[0] else None
        flipped = dataset.column("flipped") if "flipped" in dataset.records[0] else None
        faces = generator.normalize(images, poses=poses, flipped=flipped, progress=True,
                                    landmarks=landmarks,
                                    desc=f"{generator.kind} normalise")
        if faces.shape[1:] != images.shape[1:]:
            raise RuntimeError(f"{self.source}: normaliser returned {faces.shape[1:]} faces, expected {images.shape[1:]}")
        if cache is not None:
            with atomic_open(cache, "wb") as f:
                np.save(f, faces)
            write_text(stamp_file, json.dumps(stamp) + "\n")
        return faces

    def _stamp(self) -> dict:
        """Which checkpoint file made the cached outputs (a retrained checkpoint invalidates the cache)."""
        path = self.source
        if path.is_dir():
            ckpts = RunDir(path).checkpoints()
            path = ckpts[-1] if ckpts else path
        st = path.stat()
        return {"checkpoint": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def indices_for(self, subjects: Iterable[str], per_subject: int | None = None) -> np.ndarray:
        """Indices of the normalised faces of ``subjects``; with ``per_subject`` only that many per subject
        (the first ones in dataset order)."""
        keep = set(subjects)
        taken: dict[str, int] = {}
        out = []
        for i, s in enumerate(self.subjects):
            if s in keep and (not per_subject or taken.get(s, 0) < per_subject):
                taken[s] = taken.get(s, 0) + 1
                out.append(i)
        return np.asarray(out, dtype=np.int64)
