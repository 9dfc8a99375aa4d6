"""Walks through NFGAN's latent space (paper Sec. 5.5, ``nfgan traverse``).

* Two faces A and B: decoding the straight line ``(1 - t) Enc(A) + t Enc(B)`` morphs one person's normalised
  face into the other's - the clearest view of what the 256-d code holds.
* One face x: the paper's walk from ``z = Enc(x)`` to ``z~ = Enc(Dec(z))``, the code of its normalised face.
  With a well-trained NFGAN the two codes are close (the decoder already outputs the normalised face), so the
  frames barely change; the command says so and suggests a second face.

Outputs: a PNG strip ``A | t=0 ... t=1 [| B]`` and an animated GIF going there and back.
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import torch

from nfgan.atomic import save_image, write_bytes
from nfgan.device import DEVICE_HELP, DeviceError, resolve_device
from nfgan.inference.normalizer import Normalizer, nfgan_model_path


#: mean gray-level change between the first and last frame below which a walk is called invisible
VISIBLE = 4.0


def traverse(norm: Normalizer, face, steps: int = 8, to=None) -> np.ndarray:
    """uint8 frames ``steps x S x S`` decoded along the line from ``Enc(face)`` to ``Enc(to)`` (another face),
    or, without ``to``, to the code of the face's normalised face (first frame t=0, last t=1)."""
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    z = norm.encode(face)[:1]
    z_end = norm.encode(to)[:1] if to is not None else norm.encode(norm.decode(z))
    t = torch.linspace(0.0, 1.0, steps)[:, None]
    return norm.decode((1 - t) * z + t * z_end)


def strip(images: list[np.ndarray], pad: int = 2) -> np.ndarray:
    """Side by side on a white background."""
    s = images[0].shape[0]
    out = np.full((s + 2 * pad, len(images) * (s + pad) + pad), 255, dtype=np.uint8)
    for i, im in enumerate(images):
        out[pad:pad + s, pad + i * (s + pad): pad + i * (s + pad) + s] = im
    return out


def save_gif(path: Path, frames: np.ndarray, scale: int = 2, ms: int = 120) -> None:
    """Animated GIF (forward then back, looping), written atomically."""
    from PIL import Image

    seq = list(frames) + list(frames[-2:0:-1])
    ims = [Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST) for f in seq]
    buf = io.BytesIO()
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=ms, loop=0)
    write_bytes(path, buf.getvalue())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE",
                   help="one face (walk to its normalised face's code) or two (morph A into B); aligned 64x64 "
                        "crops or photos (aligned automatically)")
    p.add_argument("--model", type=Path, default=None,
                   help="NFGAN run folder, checkpoint or exported model (default: the shipped nfgan_london64 NFGAN)")
    p.add_argument("-o", "--out", required=True, type=Path,
                   help="output: NAME.png (a NAME.gif is written beside it) or a folder")
    p.add_argument("--steps", type=int, default=8, help="interpolation frames (default 8)")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)


def _face(path: Path, size: int) -> np.ndarray:
    from nfgan.data.images import read_gray_image

    img = read_gray_image(path)             # the one image reader (EXIF turn, formats, pixel limit)
    if img.size == (size, size):            # already an aligned crop
        return np.asarray(img)
    from nfgan.data.align import FaceAligner

    return FaceAligner(size=size).align(img).crop


def run(args: argparse.Namespace) -> int:
    if len(args.images) > 2:
        print("error: give one face, or two to morph one into the other", file=sys.stderr)
        return 2
    try:
        device = resolve_device(args.device)
    except DeviceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        norm = Normalizer.from_checkpoint(args.model or nfgan_model_path(), device)
        faces = [_face(p, norm.size) for p in args.images]
        frames = traverse(norm, faces[0], args.steps, faces[1] if len(faces) > 1 else None)
    except Exception as e:
        print(f"error: {' '.join(map(str, args.images))}: {e}", file=sys.stderr)
        return 1
    stem = "_".join(p.stem for p in args.images)
    if args.out.suffix.lower() == ".png":
        png, gif = args.out, args.out.with_suffix(".gif")
    else:
        png, gif = args.out / f"{stem}_traverse.png", args.out / f"{stem}_traverse.gif"
    save_image(png, strip([faces[0], *frames, *faces[1:]]))
    save_gif(gif, frames)
    change = float(np.abs(frames[-1].astype(float) - frames[0].astype(float)).mean())
    print(f"wrote {png} and {gif} (first to last frame: {change:.1f} gray levels on average)")
    if change < VISIBLE and len(faces) == 1:
        print("note: this model's code of the face and of its normalised face are almost the same, so the walk "
              "hardly shows; give a second face to morph one person into another", file=sys.stderr)
    return 0
