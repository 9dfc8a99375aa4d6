"""Inference: aligned faces in, frontal neutral faces out (``nfgan normalize`` and the Python API).

Python::

    from nfgan.normalizer import Normalizer, nfgan_model_path
    norm = Normalizer.from_checkpoint()              # the shipped default model; or a run folder / checkpoint
    out = norm.normalize(faces, poses, flipped, landmarks)   # uint8 N x 64 x 64 -> uint8 N x 64 x 64
    nf = Normalizer.from_checkpoint(nfgan_model_path())   # the shipped NFGAN: it also has a latent code
    z = nf.encode(faces)               # N x 256 codes
    imgs = nf.decode(z)                # uint8 N x 64 x 64

Two models ship (docs/model_card.md): the default normaliser ``pix2pix_lid_frontalized_london64`` (a U-Net
trained with pix2pix's losses plus NFGAN's identity loss L_id on landmark-frontalised inputs; it kept identity
best on the validation subjects) and the NFGAN ``nfgan_london64`` (encoder/decoder; ``encode``/``decode`` and
``nfgan traverse`` need its latent code). ``normalize`` runs either kind; ``encode``/``decode`` only an
NFGAN. The default normaliser frontalises turned faces (pose ``*_3quarter`` / ``*_profile``) and needs their
68 landmarks for that; frontal faces and faces of unknown pose need none.

Accepted face inputs: uint8 arrays/tensors (gray values 0..255), float arrays/tensors already in the
generator's range [-1, 1], PIL images, or lists of any of these; shapes ``S x S``, ``N x S x S`` or
``N x 1 x S x S``. Faces must be aligned like the training data (``nfgan prepare``'s ``FaceAligner``);
the CLI aligns photos itself (``--align``).
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from nfgan.atomic import save_image, write_text
from nfgan.checkpoint import CheckpointError
from nfgan.device import DEVICE_HELP, resolve_device
from nfgan.trainer import to_uint8
from nfgan.weights import assets_dir

#: file name of the shipped default normaliser in ``nfgan/assets`` (docs/model_card.md)
DEFAULT_MODEL_NAME = "pix2pix_lid_frontalized_london64.safetensors"
#: file name of the shipped NFGAN (encoder + decoder) in ``nfgan/assets`` (docs/model_card.md)
NFGAN_MODEL_NAME = "nfgan_london64.safetensors"


def default_model_path() -> Path:
    """The shipped default normaliser (landmark frontalisation + U-Net trained with L_id, London training
    subjects; docs/model_card.md)."""
    return assets_dir() / DEFAULT_MODEL_NAME


def nfgan_model_path() -> Path:
    """The shipped NFGAN (Enc + Dec, London training subjects; docs/model_card.md): the model with a latent code."""
    return assets_dir() / NFGAN_MODEL_NAME


class NormalizerInputError(ValueError):
    pass


def faces_to_tensor(images, size: int) -> torch.Tensor:
    """Any accepted face input (see module docstring) -> float ``N x 1 x S x S`` in [-1, 1]."""
    if isinstance(images, (list, tuple)):
        if not images:
            raise NormalizerInputError("no faces given")
        return torch.cat([faces_to_tensor(im, size) for im in images])
    if hasattr(images, "convert") and hasattr(images, "size"):  # PIL image
        images = np.asarray(images.convert("L"))
    t = images if torch.is_tensor(images) else torch.from_numpy(np.array(images))
    if t.dim() == 2:
        t = t[None, None]
    elif t.dim() == 3:
        t = t[:, None]
    if t.dim() != 4 or t.shape[1] != 1:
        raise NormalizerInputError(f"expected gray faces S x S, N x S x S or N x 1 x S x S, got shape {tuple(t.shape)}")
    if tuple(t.shape[-2:]) != (size, size):
        raise NormalizerInputError(f"faces must be aligned {size}x{size} crops, got {tuple(t.shape[-2:])} "
                                   "(align photos first: nfgan normalize --align, or nfgan.align.FaceAligner)")
    if t.dtype == torch.uint8:
        return t.float() / 127.5 - 1.0
    if not t.is_floating_point():
        raise NormalizerInputError(f"faces must be uint8 (0..255) or float in [-1, 1], got {t.dtype}")
    t = t.float()
    lo, hi = float(t.min()), float(t.max())
    if lo < -1.001 or hi > 1.001:
        raise NormalizerInputError(f"float faces must be in [-1, 1] (got values {lo:.3g}..{hi:.3g}); "
                                   "pass uint8 gray values instead")
    return t


class Normalizer:
    """A trained generator (``nfgan.evaluate.FaceNormalizer``: NFGAN or pix2pix U-Net) with a forgiving input
    API. ``info``: ``checkpoint`` (the file read), ``step``, ``kind``, ``exported`` (an exported model file)."""

    def __init__(self, generator, device: str | torch.device = "cpu"):
        self.device = resolve_device(device)
        self.generator = generator.to(self.device)
        self.kind = generator.kind
        self.size = int(generator.info["model"].get("image_size", 64))
        source = generator.info.get("source")
        self.info = {"checkpoint": source, "step": generator.info.get("step"), "kind": self.kind,
                     "exported": "format" in generator.info}

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str | torch.device = "cpu") -> "Normalizer":
        """Load from a run folder (its latest checkpoint), a training checkpoint, or an exported model file;
        ``None`` = the shipped default normaliser (:func:`default_model_path`). Raises ``CheckpointError``
        naming the file when it cannot be read, ``nfgan.device.DeviceError`` for a device that cannot be used."""
        from nfgan.evaluate import EvaluateError, load_generator

        try:
            return cls(load_generator(Path(path) if path is not None else default_model_path()), device)
        except EvaluateError as e:
            raise CheckpointError(str(e)) from None

    def _nfgan_net(self, name: str) -> torch.nn.Module:
        if self.kind != "nfgan":
            raise CheckpointError(f"{self.info['checkpoint']}: a {self.kind} model has no latent code; "
                                  "encode/decode need an NFGAN, e.g. Normalizer.from_checkpoint(nfgan_model_path())")
        return self.generator.nets[name]

    @property
    def encoder(self) -> torch.nn.Module:
        return self._nfgan_net("enc")

    @property
    def decoder(self) -> torch.nn.Module:
        return self._nfgan_net("dec")

    @torch.no_grad()
    def encode(self, images, batch_size: int = 64) -> torch.Tensor:
        enc = self.encoder
        x = faces_to_tensor(images, self.size)
        return torch.cat([enc(x[i:i + batch_size].to(self.device)).cpu() for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def decode(self, z: torch.Tensor, batch_size: int = 64, as_uint8: bool = True):
        """Codes ``N x 256`` -> faces: uint8 ``N x S x S`` (default) or float ``N x 1 x S x S`` in [-1, 1]."""
        dec = self.decoder
        z = torch.as_tensor(z, dtype=torch.float32)
        if z.dim() == 1:
            z = z[None]
        out = torch.cat([dec(z[i:i + batch_size].to(self.device)).cpu() for i in range(0, len(z), batch_size)])
        return to_uint8(out) if as_uint8 else out

    def normalize(self, images, poses: Sequence[str] | None = None, flipped: Sequence | None = None,
                  landmarks: np.ndarray | None = None, batch_size: int = 64) -> np.ndarray:
        """Aligned faces -> their synthesised frontal neutral faces, uint8 ``N x S x S`` (``S x S`` for one
        ``S x S`` input). ``poses``/``flipped`` (per face, as in a prepared manifest; ``nfgan.align.pose_from_yaw``
        and ``AlignedFace.flipped`` for a photo) apply the model's mirroring rule; a model trained with
        frontalised inputs also needs the faces' ``landmarks`` (``N x 68 x 2``, ``AlignedFace.landmarks68``)
        for turned poses. Without poses no face is mirrored or frontalised. Runs exactly what ``nfgan
        evaluate`` runs (``FaceNormalizer.normalize``) on the faces as 8-bit gray values."""
        single = (hasattr(images, "ndim") and images.ndim == 2) or (hasattr(images, "convert"))
        x = faces_to_tensor(images, self.size)
        if poses is not None and len(poses) != len(x):
            raise NormalizerInputError(f"{len(x)} faces but {len(poses)} poses")
        out = self.generator.normalize(to_uint8(x), poses, flipped, batch_size=batch_size, landmarks=landmarks)
        return out[0] if single else out


# ----------------------------------------------------------------------------------------------- CLI
def _looks_aligned(img, size: int) -> bool:
    """A face that is already an aligned crop: size x size and gray (or colour with equal channels)."""
    if img.size != (size, size):
        return False
    if img.mode in ("L", "I;16", "I", "F", "1"):
        return True
    rgb = np.asarray(img.convert("RGB")).astype(np.int16)
    return int(np.abs(rgb[..., 0] - rgb[..., 1]).max()) <= 2 and int(np.abs(rgb[..., 1] - rgb[..., 2]).max()) <= 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", type=Path, help="face images (aligned 64x64 crops, or photos with --align)")
    p.add_argument("--model", type=Path, default=None,
                   help="run folder, checkpoint or exported model, NFGAN or pix2pix (default: the shipped "
                        "pix2pix_lid_frontalized_london64 normaliser)")
    p.add_argument("-o", "--out", required=True, type=Path, help="output folder (PNG per input)")
    p.add_argument("--align", choices=["auto", "always", "never"], default="auto",
                   help="align photos with nfgan.align.FaceAligner first (auto: when not an aligned gray crop)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)


def run(args: argparse.Namespace) -> int:
    """``nfgan normalize``: any generator ``nfgan.evaluate.load_generator`` reads (NFGAN or the pix2pix U-Net).

    Photos aligned here get a pose from their estimated yaw (``nfgan.align.pose_from_yaw``) and the model's
    mirroring rule (``FaceNormalizer.mirror_mask``: the aligner's own mirroring counts) exactly as in
    ``nfgan demo`` and ``nfgan evaluate``; already aligned crops are used as they are (pose unknown).
    """
    from PIL import Image
    from tqdm import tqdm

    from nfgan.evaluate import EvaluateError, load_generator

    try:
        device = resolve_device(args.device)
        gen = load_generator(args.model if args.model is not None else default_model_path())
    except (ValueError, FileNotFoundError, EvaluateError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    gen.to(device)
    size = int(gen.info["model"].get("image_size", 64))
    aligner = None
    faces: list[np.ndarray] = []
    poses: list[str] = []
    flipped: list[bool] = []
    landmarks: list[np.ndarray] = []
    names: list[Path] = []
    report: list[tuple[str, str, str]] = []
    used: set[str] = set()
    for path in tqdm(args.images, desc="reading", unit="img", disable=len(args.images) < 20):
        try:
            with Image.open(path) as im:
                im.load()
                img = im.copy()
            if args.align == "always" or (args.align == "auto" and not _looks_aligned(img, size)):
                try:
                    from nfgan.align import FaceAligner, pose_from_yaw
                except ImportError:
                    raise ValueError("not an aligned crop and nfgan.align is not available") from None
                if aligner is None:
                    aligner = FaceAligner(size=size)
                aligned = aligner.align(img)
                face, pose, flip = aligned.crop, pose_from_yaw(aligned.yaw_deg), bool(aligned.flipped)
                lm = aligned.landmarks68
            else:
                face, pose, flip = np.asarray(img.convert("L")), "unknown", False
                lm = np.full((68, 2), np.nan, np.float32)
                if face.shape != (size, size):
                    raise ValueError(f"size {face.shape[1]}x{face.shape[0]}, expected an aligned "
                                     f"{size}x{size} crop (use --align)")
        except Exception as e:  # one bad file must not stop the others
            print(f"{path}: skipped: {e}", file=sys.stderr)
            report.append((str(path), "error", str(e)))
            continue
        name = path.stem
        k = 1
        while name in used:
            k += 1
            name = f"{path.stem}-{k}"
        used.add(name)
        faces.append(face)
        landmarks.append(lm)
        poses.append(pose)
        flipped.append(flip)
        names.append(args.out / f"{name}.png")
        report.append((str(path), "ok", f"{names[-1]} (pose {pose})"))
    if faces:
        stack = np.stack(faces)
        for i in tqdm(range(0, len(stack), args.batch), desc="normalizing", unit="batch",
                      disable=len(stack) <= args.batch):
            outs = gen.normalize(stack[i:i + args.batch], poses[i:i + args.batch], flipped[i:i + args.batch],
                                 batch_size=args.batch, landmarks=np.stack(landmarks[i:i + args.batch]))
            for j, out in enumerate(outs):
                save_image(names[i + j], out)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "status", "detail"])
    w.writerows(report)
    write_text(args.out / "normalize_report.csv", buf.getvalue())
    n_bad = sum(1 for r in report if r[1] != "ok")
    print(f"{len(faces)} normalised face(s) in {args.out}" + (f", {n_bad} skipped (see normalize_report.csv)"
                                                             if n_bad else ""))
    return 1 if n_bad else 0


# ----------------------------------------------------------------------------------------------- figure
POSE_ORDER = ("left_profile", "left_3quarter", "frontal", "right_3quarter", "right_profile")


def heldout_figure(norm: Normalizer, dataset_root: str | Path, subjects: Sequence[str],
                   expressions: Sequence[str] = ("neutral", "happy"), pad: int = 2) -> np.ndarray:
    """A comparison sheet for held-out subjects (docs/figures/london_heldout.png).

    For each subject two rows: its prepared inputs (every view, each expression, in ``POSE_ORDER``) and,
    under each, the network's output; the last column holds the ground-truth frontal neutral face (top row;
    the cell under it stays blank). Returns uint8 gray.
    """
    from PIL import Image, ImageDraw

    from nfgan.dataset import PreparedDataset

    ds = PreparedDataset(dataset_root)
    s = ds.size
    rank = {p: i for i, p in enumerate(POSE_ORDER)}
    rows = []
    for sub in subjects:
        idx = [i for e in expressions for i in sorted(ds.indices([sub], expression=e),
                                                       key=lambda i: rank.get(ds.records[i]["pose"], 99))]
        truth = ds.indices([sub], expression="neutral", pose="frontal")
        if not idx:
            continue
        rows.append((sub, np.asarray(ds.images[idx]), norm.normalize(np.asarray(ds.images[idx])),
                     np.asarray(ds.images[truth[0]]) if len(truth) else None))
    if not rows:
        raise ValueError(f"{dataset_root}: none of the subjects {list(subjects)[:5]} has faces")
    label_w = 40
    ncol = max(len(r[1]) for r in rows) + 1
    cell = s + pad
    sheet = np.full((len(rows) * 2 * cell + pad + 3 * len(rows), label_w + ncol * cell + 3 * pad), 255, np.uint8)
    y = pad
    for sub, inp, out, truth in rows:
        for j in range(len(inp)):
            x = label_w + j * cell
            sheet[y:y + s, x:x + s] = inp[j]
            sheet[y + cell:y + cell + s, x:x + s] = out[j]
        if truth is not None:
            x = label_w + (ncol - 1) * cell + 2 * pad
            sheet[y:y + s, x:x + s] = truth
        y += 2 * cell + 3
    img = Image.fromarray(sheet)
    draw = ImageDraw.Draw(img)
    y = pad
    for sub, *_ in rows:
        draw.text((2, y + 4), sub, fill=0)
        draw.text((2, y + 4 + 12), "in", fill=0)
        draw.text((2, y + cell + 4), "out", fill=0)
        y += 2 * cell + 3
    return np.asarray(img)
