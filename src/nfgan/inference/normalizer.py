"""Inference: photos or aligned faces in, frontal neutral faces out (``nfgan normalize`` and the Python API).

Python::

    import nfgan
    norm = nfgan.Normalizer.from_checkpoint()        # the shipped default normaliser; or a run folder / file
    result = norm.normalize_photos(["photo.jpg"])    # align, estimate pose and landmarks, normalise: one call
    result.faces[0]                                  # uint8 64 x 64 frontal neutral face (None if it failed)
    out = norm.normalize(faces, poses, flipped, landmarks)   # already aligned uint8 N x 64 x 64 crops
    nf = nfgan.Normalizer.from_checkpoint(nfgan.nfgan_model_path())   # the shipped NFGAN: it has a latent code
    z = nf.encode(faces); imgs = nf.decode(z)

Shipped models, by name (``load_model(name)``, ``--model NAME``; docs/model_card.md): ``default`` (=
``all_data``, ``pix2pix_all_data_research64``: landmark frontalisation of turned faces, then a U-Net whose
finest skip connections are shut inside the mouth and brows, trained with pix2pix's losses, NFGAN's identity
loss L_id and perceptual loss L_feat and an expression critic on London, canada, CK+, JAFFE and Yale, plus
synthetic expressions made
with the Surrey Face Model - **non-commercial research use only**: CK+, JAFFE and Yale are research-only
datasets and the SFM is non-commercial),
``cc_by`` (``pix2pix_cc_by64``: the same U-Net, skips shut in the same places, and losses on the CC BY 4.0 sets
London and canada only: no research-only training data, no synthetic expressions), ``london``
(``pix2pix_lid_frontalized_london64``, the earlier default: London only) and
``nfgan`` (``nfgan_london64``, the paper's encoder/decoder; ``encode``/``decode`` and ``nfgan traverse`` need
its latent code). The pix2pix models frontalise turned faces (pose ``*_3quarter`` / ``*_profile``) and need
their 68 landmarks for that; ``default`` also re-frames and un-warps a frontal face whose framing is far from a
neutral face's (a surprised one), which needs its landmarks too (without them a frontal face goes to the network
as it is, with a warning); ``normalize_photos`` and ``nfgan normalize`` find them themselves, on photos and on
model-sized crops alike. The landmark model that aligns
photos (dlib's, trained on iBUG 300-W) is itself non-commercial (README, "Data, weights and attributions").

``Normalizer.from_onnx("model.onnx")`` (or ``from_checkpoint(path, backend="onnxruntime")``, ``nfgan normalize
--backend onnxruntime``) runs the network in onnxruntime instead of torch, after the same numpy input rule
(``nfgan export --format onnx`` writes the graphs; docs/deploy.md).

Accepted face inputs for ``normalize``: uint8 arrays/tensors (gray values 0..255), float arrays/tensors already
in the generator's range [-1, 1], PIL images, or lists of any of these; shapes ``S x S``, ``N x S x S`` or
``N x 1 x S x S``. Faces must be aligned like the training data (``nfgan.align_face``).
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from nfgan.atomic import save_image, write_text
from nfgan.checkpoint import CheckpointError
from nfgan.device import DEVICE_HELP, resolve_device
from nfgan.inference.generator import Generator, load_model
from nfgan.pixels import to_uint8, to_unit

from nfgan.inference.generator import (DEFAULT_MODEL_NAME, NFGAN_MODEL_NAME,  # noqa: F401  (public here too)
                                       default_model_path, nfgan_model_path)

#: where the networks run: torch (default) or onnxruntime (CPU, the optional onnx extra; docs/deploy.md)
BACKENDS = ("torch", "onnxruntime")


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
                                   "(align photos first: nfgan normalize --align, or nfgan.data.align.FaceAligner)")
    if t.dtype == torch.uint8:
        return to_unit(t)
    if not t.is_floating_point():
        raise NormalizerInputError(f"faces must be uint8 (0..255) or float in [-1, 1], got {t.dtype}")
    t = t.float()
    lo, hi = float(t.min()), float(t.max())
    if lo < -1.001 or hi > 1.001:
        raise NormalizerInputError(f"float faces must be in [-1, 1] (got values {lo:.3g}..{hi:.3g}); "
                                   "pass uint8 gray values instead")
    return t


@dataclass
class PhotoResult:
    """What :meth:`Normalizer.normalize_photos` made of each photo (lists in input order; ``None`` where the
    photo failed, with the reason in ``errors``)."""

    faces: list            # uint8 S x S normalised faces
    aligned: list          # nfgan.data.align.AlignedFace: the aligned input crop, landmarks, yaw, mirroring
    poses: list            # pose label from the estimated yaw
    errors: list           # None, or why the photo could not be normalised

    @property
    def ok(self) -> list[bool]:
        return [e is None for e in self.errors]


class Normalizer:
    """A trained generator (``nfgan.inference.generator.Generator``: NFGAN or pix2pix U-Net) with a forgiving
    input API. ``info``: ``checkpoint`` (the file read), ``step``, ``kind``, ``exported`` (an exported model file)."""

    def __init__(self, generator: Generator, device: str | torch.device = "cpu"):
        self.device = resolve_device(device)
        self.generator = generator.to(self.device)
        self.kind = generator.kind
        self.size = generator.size
        source = generator.info.get("source")
        self.info = {"checkpoint": source, "step": generator.info.get("step"), "kind": self.kind,
                     "exported": "format" in generator.info,
                     "backend": generator.info.get("backend", "torch")}

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str | torch.device = "cpu",
                        backend: str = "torch", threads: int | None = None) -> "Normalizer":
        """Load from a run folder (its latest checkpoint), a training checkpoint, or an exported model file;
        ``None`` = the shipped default normaliser (:func:`default_model_path`; non-commercial research use only,
        ``"cc_by"`` names the model trained on CC BY data only). Raises ``CheckpointError``
        naming the file when it cannot be read, ``nfgan.device.DeviceError`` for a device that cannot be used.

        ``backend="onnxruntime"`` (CPU only; ``pip install 'nfgan[onnx]'``): the network runs in onnxruntime
        (``threads`` intra-op threads), from an ``.onnx`` file of ``nfgan export --format onnx`` or any of the
        files above exported to ONNX in memory; the input rule is the same numpy code (docs/deploy.md)."""
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if backend == "onnxruntime":
            from nfgan.inference.onnx_backend import load_onnx_generator

            return cls(load_onnx_generator(path, threads=threads), device)
        return cls(load_model(Path(path) if path is not None else default_model_path()), device)

    @classmethod
    def from_onnx(cls, path: str | Path | None = None, threads: int | None = None) -> "Normalizer":
        """``from_checkpoint(path, backend="onnxruntime")``: an ``.onnx`` file of ``nfgan export --format onnx``
        (an NFGAN's ``_encoder`` / ``_decoder`` graphs beside it give ``encode`` / ``decode``)."""
        return cls.from_checkpoint(path, "cpu", backend="onnxruntime", threads=threads)

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
                  landmarks: np.ndarray | None = None, batch_size: int = 64,
                  identity_pull: bool = True) -> np.ndarray:
        """Aligned faces -> their synthesised frontal neutral faces, uint8 ``N x S x S`` (``S x S`` for one
        ``S x S`` input). ``poses``/``flipped`` (per face, as in a prepared manifest; ``nfgan.data.align.pose_from_yaw``
        and ``AlignedFace.flipped`` for a photo) apply the model's mirroring rule; a model trained with
        frontalised inputs also needs the faces' ``landmarks`` (``N x 68 x 2``, ``AlignedFace.landmarks68``)
        for turned poses, and one with geometric neutralisation (``default``) for frontal ones. Without poses no
        face is mirrored or frontalised. Runs exactly what ``nfgan
        evaluate`` runs (``Generator.normalize``) on the faces as 8-bit gray values, including the default's
        identity pull of turned faces (``nfgan.inference.identity_pull``; ``identity_pull=False``: the plain
        generator, as its ONNX graph gives, about 30x faster on turned faces on a CPU)."""
        single = (hasattr(images, "ndim") and images.ndim == 2) or (hasattr(images, "convert"))
        x = faces_to_tensor(images, self.size)
        if poses is not None and len(poses) != len(x):
            raise NormalizerInputError(f"{len(x)} faces but {len(poses)} poses")
        out = self.generator.normalize(to_uint8(x), poses, flipped, batch_size=batch_size, landmarks=landmarks,
                                       identity_pull=identity_pull)
        return out[0] if single else out

    def normalize_photos(self, photos, largest_face: bool = False, batch_size: int = 64,
                         detector: str = "hog", identity_pull: bool = True) -> PhotoResult:
        """Photos (file paths, PIL images or uint8 arrays, gray or RGB) -> their frontal neutral faces, in one
        call: each photo is aligned (face detector + dlib's 68 landmarks, ``nfgan.data.align``), its pose
        estimated from the landmarks, mirrored and frontalised as the model was trained, and normalised (a
        photo that already is a model-sized crop is aligned by ``FaceAligner.align_crop``: its own pixels when
        it is framed as nfgan frames faces). A photo that cannot be read or has no usable face gets ``None``
        and its reason in ``errors``; the others go on. ``detector``: ``nfgan.data.align.DETECTORS`` - "hog"
        (dlib HOG, default), "cnn" (dlib MMOD) or "blazeface" (the ported BlazeFace, faster;
        docs/preparation.md); an unknown name is a ValueError."""
        from nfgan.data.align import AlignError, pose_from_yaw
        from nfgan.data.images import ImageReadError, read_gray_image

        if isinstance(photos, (str, Path)) or (hasattr(photos, "ndim") and photos.ndim in (2, 3)
                                                and not isinstance(photos, (list, tuple))):
            photos = [photos]
        aligner = _make_aligner(self.size, detector, largest_face)
        n = len(photos)
        result = PhotoResult([None] * n, [None] * n, [None] * n, [None] * n)
        for i, photo in enumerate(photos):
            try:
                image = read_gray_image(photo) if isinstance(photo, (str, Path)) else photo
                a = aligner.align_crop(image) if _is_crop(image, self.size) else aligner.align(image)
                result.aligned[i], result.poses[i] = a, pose_from_yaw(a.yaw_deg)
            except (AlignError, ImageReadError, ValueError) as e:
                result.errors[i] = str(e)
        ok = [i for i in range(n) if result.errors[i] is None]
        if ok:
            crops = np.stack([result.aligned[i].crop for i in ok])
            outs = self.normalize(crops, [result.poses[i] for i in ok], [bool(result.aligned[i].flipped) for i in ok],
                                  landmarks=np.stack([result.aligned[i].landmarks68 for i in ok]),
                                  batch_size=batch_size, identity_pull=identity_pull)
            for i, face in zip(ok, outs):
                result.faces[i] = face
        return result


def _is_crop(image, size: int) -> bool:
    """Is ``image`` (PIL image or array) already a ``size`` x ``size`` crop (for ``FaceAligner.align_crop``)?"""
    shape = (image.height, image.width) if hasattr(image, "height") else np.shape(image)[:2]
    return tuple(shape) == (size, size)


def _make_aligner(size: int, detector: str, largest_face: bool):
    """The aligner of ``normalize_photos`` and ``nfgan normalize`` (``largest_face``: take the largest of several
    faces instead of refusing unless one dominates)."""
    from nfgan.data.align import FaceAligner

    return FaceAligner(size=size, detector=detector, **({"dominance": 1.0} if largest_face else {}))


# ----------------------------------------------------------------------------------------------- CLI
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".gif")
MAX_STEM_BYTES = 180   # output names stay well under the 255-byte limit of common file systems


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def shown(path) -> str:
    """A path as text that can always be printed and written to a UTF-8 report (undecodable bytes escaped)."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _safe_stem(path: Path) -> str:
    stem = shown(path.stem).replace("\\", "_") or "face"
    raw = stem.encode("utf-8")
    return raw[:MAX_STEM_BYTES].decode("utf-8", "ignore") if len(raw) > MAX_STEM_BYTES else stem


def expand_inputs(paths: Sequence[Path]) -> list[Path]:
    """Files as given; folders replaced by the image files below them (recursively, sorted)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file())
        else:
            out.append(p)
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="*", type=Path,
                   help="photos, aligned 64x64 crops, or folders of them (searched recursively)")
    p.add_argument("--data", type=Path, help="a prepared folder (nfgan prepare) instead of images: its faces with "
                                            "their poses, mirroring and landmarks from the manifest")
    p.add_argument("--model", type=Path, default=None,
                   help="run folder, checkpoint or exported model, NFGAN or pix2pix, an .onnx graph of nfgan "
                        "export, or a shipped model by name: default (= all_data: five face sets incl. CK+, JAFFE, "
                        "Yale; NON-COMMERCIAL RESEARCH USE ONLY), cc_by (London + canada, CC BY 4.0 data only: "
                        "no research-only training data), london (the earlier London-only default, CC BY), nfgan "
                        "(the paper's model); docs/model_card.md. PATH#live or PATH#ema chooses a checkpoint's live "
                        "generator or its moving average (default: the average where the run kept one)")
    p.epilog = ("Licence: the default model was trained on research-only face sets (CK+, JAFFE, Yale) and on "
                "synthetic faces made with the non-commercial Surrey Face Model, so it is for "
                "non-commercial research only; for other uses pass --model cc_by (trained on CC BY 4.0 data only; "
                "attribute the London and canada sets). Aligning photos uses dlib's 68-point landmark model, "
                "whose iBUG 300-W training data excludes commercial use (docs/model_card.md).")
    p.add_argument("-o", "--out", required=True, type=Path,
                   help="output folder (one PNG per input, named after it); a file name ending in .png for one input")
    p.add_argument("--align", choices=["auto", "always", "never"], default="auto",
                   help="align photos first (auto: a photo is aligned; a model-sized crop gets its landmarks and "
                        "pose found on it and keeps its pixels when it is framed as nfgan frames faces, else it is "
                        "re-aligned; a crop without a findable face goes as it is. always: every image, crops "
                        "included, is aligned as a photo, and one without a findable face is reported and skipped. "
                        "never: every image is taken as an aligned crop of unknown pose)")
    p.add_argument("--largest-face", action="store_true",
                   help="a photo with several faces: take the largest (default: refuse unless one dominates)")
    from nfgan.data.align import DETECTORS

    p.add_argument("--detector", choices=DETECTORS, default="hog",
                   help="face detector for photos: hog (dlib HOG, default), cnn (dlib MMOD, slow on CPU) or "
                        "blazeface (ported MediaPipe BlazeFace: faster; docs/preparation.md)")
    p.add_argument("--sheet", action="store_true",
                   help="also write NAME_sheet.png per input: photo | aligned input | normalised face, labelled")
    p.add_argument("--batch", type=positive_int, default=64, help="faces per forward pass (default 64)")
    p.add_argument("--no-identity-pull", action="store_true",
                   help="the plain generator for turned faces: skip the default's identity pull (a few gradient "
                        "steps per turned face towards dlib's reading of the photo; about 30x faster on turned "
                        "faces on a CPU; the ONNX backend never runs it)")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="where the network runs: torch (default), or onnxruntime (CPU; pip install 'nfgan[onnx]'; "
                        "default for a --model ending in .onnx, written by nfgan export --format onnx; another "
                        "model is exported to ONNX in memory). The input rule is the same numpy code either way")
    from nfgan.data.shard import SHARD_HELP, shard_arg

    p.add_argument("--shard", type=shard_arg, default=None, metavar="I/N",
                   help=SHARD_HELP + ". Every shard writes into the same -o folder, each output under the name an "
                        "unsharded run gives it, so the N shards together write exactly the files of one run (no "
                        "merge step); each shard's report is normalize_report.shardIofN.csv")


def _read_inputs(args, paths: list[Path], size: int, report: list) -> tuple[list, list, list, list, list]:
    """Read and (where needed) align every input; a bad one is reported and skipped."""
    from tqdm import tqdm

    from nfgan.data.align import AlignError, pose_from_yaw
    from nfgan.data.images import read_gray_image

    aligner = None

    def get_aligner():
        nonlocal aligner
        if aligner is None:     # made at the first input that needs it (dlib's models load once)
            aligner = _make_aligner(size, args.detector, args.largest_face)
        return aligner
    faces, poses, flipped, landmarks, sources = [], [], [], [], []
    args.photos = {}
    for path in tqdm(paths, desc="reading", unit="img", disable=len(paths) < 20):
        try:
            img = read_gray_image(path)
            if args.sheet:
                args.photos[path] = _thumbnail(img, SHEET_TILE)
            crop, aligned = _is_crop(img, size), None
            if args.align == "always" or (args.align == "auto" and not crop):
                aligned = get_aligner().align(img)
            elif not crop:
                raise ValueError(f"size {img.width}x{img.height}, expected an aligned {size}x{size} crop "
                                 "(use --align auto)")
            elif args.align == "auto":      # a model-sized crop: its landmarks and pose, when a face is found
                try:
                    aligned = get_aligner().align_crop(img)
                except AlignError:
                    pass                    # no face found: the crop goes as it is, of unknown pose
            if aligned is not None:
                face, pose, flip, lm = (aligned.crop, pose_from_yaw(aligned.yaw_deg), bool(aligned.flipped),
                                        aligned.landmarks68)
            else:
                face, pose, flip = np.asarray(img), "unknown", False
                lm = np.full((68, 2), np.nan, np.float32)
        except Exception as e:  # one bad file must not stop the others
            print(f"{shown(path)}: skipped: {shown(e)}", file=sys.stderr)
            report.append((shown(path), "error", shown(e)))
            continue
        faces.append(face)
        poses.append(pose)
        flipped.append(flip)
        landmarks.append(lm)
        sources.append(path)
    return faces, poses, flipped, landmarks, sources


SHEET_TILE = 160


def _thumbnail(img, side: int) -> np.ndarray:
    """A gray PIL image fitted into a white ``side`` x ``side`` square."""
    from PIL import Image

    im = img.copy()
    im.thumbnail((side, side), Image.LANCZOS)
    canvas = Image.new("L", (side, side), 255)
    canvas.paste(im, ((side - im.width) // 2, (side - im.height) // 2))
    return np.asarray(canvas)


def sheet(panels: list[tuple[str, np.ndarray]], side: int = SHEET_TILE, pad: int = 8) -> np.ndarray:
    """Labelled panels side by side (each scaled to ``side`` x ``side``), uint8 gray."""
    from PIL import Image, ImageDraw

    label_h = 18
    out = Image.new("L", (len(panels) * (side + pad) + pad, side + 2 * pad + label_h), 255)
    draw = ImageDraw.Draw(out)
    for i, (label, img) in enumerate(panels):
        tile = Image.fromarray(img)
        if tile.size != (side, side):
            tile = tile.resize((side, side), Image.BICUBIC)
        x = pad + i * (side + pad)
        out.paste(tile, (x, pad))
        draw.text((x, pad + side + 3), label, fill=0)
    return np.asarray(out)


def _output_paths(out: Path, sources: list[Path], single_file: bool) -> list[Path]:
    """Output file of each input: its stem, with -2, -3... for repeated stems in input order. ``run`` names the
    whole input list before reading (and before taking a shard of it), so names never depend on which inputs
    fail or on the shard."""
    if single_file:
        return [out] * len(sources)
    used: set[str] = set()
    names = []
    for path in sources:
        stem = name = _safe_stem(path)
        k = 1
        while name in used:
            k += 1
            name = f"{stem}-{k}"
        used.add(name)
        names.append(out / f"{name}.png")
    return names


def run(args: argparse.Namespace) -> int:
    """``nfgan normalize``: any generator ``nfgan.inference.load_model`` reads (NFGAN or the pix2pix U-Net).

    Photos are aligned here and get a pose from their estimated yaw and the model's mirroring and
    frontalisation rule, exactly as in ``Normalizer.normalize_photos``, the demo and ``nfgan evaluate``; a
    prepared folder (``--data``) brings its poses and landmarks; aligned crops are used as they are (pose
    unknown: not mirrored, not frontalised - a warning says so when the model would have).

    Exit status: 0 every input normalised, 1 some inputs failed (each reported, the rest written; 0 for a shard
    taken from torchrun's RANK / WORLD_SIZE, see ``nfgan.data.shard``), 2 nothing could run (no inputs,
    unusable model, device or output folder).
    """
    from tqdm import tqdm

    def fail(msg: str) -> int:
        print(f"error: {msg}", file=sys.stderr)
        return 2

    if bool(args.images) == bool(args.data):
        return fail("give image files / folders, or --data PREPARED_FOLDER (not both)")
    out = args.out
    single_file = out.suffix.lower() == ".png"
    if out.exists() and not out.is_dir() and not single_file:
        return fail(f"{shown(out)} exists and is not a folder")
    from nfgan.data.shard import TORCHRUN, ShardError, shard_from_args

    try:
        shard, shard_source = shard_from_args(getattr(args, "shard", None))
    except ShardError as e:
        return fail(str(e))
    if shard is not None and single_file:
        return fail(f"-o {shown(out)} names one file; a shard (--shard, or RANK/WORLD_SIZE) needs an output folder")
    backend = getattr(args, "backend", None) or (
        "onnxruntime" if args.model is not None and args.model.suffix.lower() == ".onnx" else "torch")
    try:
        device = resolve_device(args.device)
        if backend == "onnxruntime":
            from nfgan.inference.onnx_backend import load_onnx_generator

            if device.type != "cpu":
                return fail("the onnxruntime backend runs on the CPU: use --device cpu (or --backend torch)")
            gen = load_onnx_generator(args.model)
        elif args.model is not None and args.model.suffix.lower() == ".onnx":
            return fail(f"{shown(args.model)} is an ONNX graph: run it with --backend onnxruntime")
        else:
            gen = load_model(args.model if args.model is not None else default_model_path())
    except (ValueError, FileNotFoundError, ImportError) as e:
        return fail(shown(e))
    gen.to(device)
    size = gen.size
    report: list[tuple[str, str, str]] = []
    if args.data:
        from nfgan.data.dataset import PreparedDataset, PreparedDatasetError

        try:
            ds = PreparedDataset(args.data)
        except (PreparedDatasetError, OSError, ValueError) as e:
            return fail(shown(e))
        if ds.size != size:
            return fail(f"{args.data}: faces are {ds.size} px, the model makes {size} px faces")
        keep = list(range(len(ds)) if shard is None else shard.positions(len(ds)))
        faces = list(np.asarray(ds.images[keep]))
        all_poses, all_flipped = ds.column("pose"), ds.column("flipped")
        poses, flipped = [all_poses[i] for i in keep], [all_flipped[i] for i in keep]
        landmarks = (list(np.asarray(ds.landmarks[keep])) if ds.landmarks is not None
                     else [np.full((68, 2), np.nan, np.float32)] * len(faces))
        all_sources = [Path(i) for i in ds.column("id")]
        sources = [all_sources[i] for i in keep]
        all_names = _output_paths(out, all_sources, single_file)
        names = [all_names[i] for i in keep]
        n_all = len(ds)
    else:
        paths = expand_inputs(args.images)
        if not paths:
            return fail("no image files in the given folders")
        # names over the whole list first: a shard's files are named as in an unsharded run
        all_names = _output_paths(out, paths, single_file)
        n_all = len(paths)
        if shard is not None:
            keep = shard.positions(len(paths))
            paths, all_names = [paths[i] for i in keep], [all_names[i] for i in keep]
        faces, poses, flipped, landmarks, sources = _read_inputs(args, paths, size, report)
        names, j = [], 0
        for src in sources:              # the inputs read, in order (the very objects of ``paths``)
            while paths[j] is not src:   # an input that failed keeps its name unused
                j += 1
            names.append(all_names[j])
            j += 1
    if shard is not None:
        print(f"shard {shard} (from {shard_source}): {len(faces) + len(report)} of {n_all} inputs (those whose "
              f"index is {shard.index} modulo {shard.count}) -> {shown(out)}", flush=True)
    if single_file and len(faces) + len(report) != 1:
        return fail(f"-o {shown(out)} names one file, but there are {len(faces) + len(report)} inputs: give a folder")
    try:
        (out.parent if single_file else out).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return fail(f"cannot create the output folder {shown(out)}: {e.strerror or e}")
    unknown = sum(p == "unknown" for p in poses)
    if unknown and (gen.flip_left_poses or gen.frontalize):
        print(f"warning: {unknown} aligned crop(s) of unknown pose go to the generator as they are: this model "
              "mirrors and frontalises turned faces, which needs their pose and landmarks - give the photos, or "
              "a prepared folder with --data", file=sys.stderr)
    if faces:
        stack = np.stack(faces)
        for i in tqdm(range(0, len(stack), args.batch), desc="normalizing", unit="batch",
                      disable=len(stack) <= args.batch):
            outs = gen.normalize(stack[i:i + args.batch], poses[i:i + args.batch], flipped[i:i + args.batch],
                                 batch_size=args.batch, landmarks=np.stack(landmarks[i:i + args.batch]),
                                 identity_pull=not getattr(args, "no_identity_pull", False))
            for j, face in enumerate(outs):
                src, dst = sources[i + j], names[i + j]
                try:
                    save_image(dst, face)
                    if args.sheet:
                        photos = getattr(args, "photos", {})
                        panels = ([("photo", photos[src])] if src in photos and poses[i + j] != "unknown"
                                  else []) + [(f"input ({poses[i + j]})", stack[i + j]), ("normalised", face)]
                        save_image(dst.with_name(dst.stem + "_sheet.png"), sheet(panels))
                    report.append((shown(src), "ok", f"{shown(dst)} (pose {poses[i + j]})"))
                except OSError as e:   # a full disk or a vanished folder: this face fails, the others go on
                    print(f"{shown(src)}: not written: {shown(dst)}: {e.strerror or e}", file=sys.stderr)
                    report.append((shown(src), "error", f"cannot write {shown(dst)}: {e.strerror or e}"))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "status", "detail"])
    w.writerows(report)
    report_path = (out.parent if single_file else out) / (
        "normalize_report.csv" if shard is None else f"normalize_report.{shard.tag}.csv")
    try:
        write_text(report_path, buf.getvalue())
    except OSError as e:
        print(f"warning: cannot write {shown(report_path)}: {e.strerror or e}", file=sys.stderr)
    n_ok = sum(1 for r in report if r[1] == "ok")
    n_bad = len(report) - n_ok
    print(f"{n_ok} normalised face(s) in {shown(out)}" + (f", {n_bad} failed (see {report_path.name})"
                                                          if n_bad else ""))
    # under torchrun any non-zero exit reads as a crash and stops the other shards: failures are in the report
    return 1 if n_bad and shard_source != TORCHRUN else 0
