"""Latent traversal from a face to its normalised face (paper Sec. 5.5, ``nfgan traverse``).

``z = Enc(x)`` is the code of the input and ``z~ = Enc(Dec(z))`` the code of its synthesised frontal
neutral face; decoding the straight line ``(1 - t) z + t z~`` for t in [0, 1] morphs the face's
reconstruction into its normalised version (the smooth expression-change sequences of Sec. 5.5).
Outputs: a PNG strip ``input | t=0 ... t=1`` and an animated GIF going there and back.
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


def traverse(norm: Normalizer, face, steps: int = 8) -> np.ndarray:
    """uint8 frames ``steps x S x S`` decoded along z -> z~ (first frame t=0, last t=1)."""
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    z = norm.encode(face)[:1]
    z_tilde = norm.encode(norm.decode(z))
    t = torch.linspace(0.0, 1.0, steps)[:, None]
    return norm.decode((1 - t) * z + t * z_tilde)


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
    p.add_argument("image", type=Path, help="an aligned 64x64 face or a photo (aligned automatically)")
    p.add_argument("--model", type=Path, default=None,
                   help="NFGAN run folder, checkpoint or exported model (default: the shipped nfgan_london64 NFGAN)")
    p.add_argument("-o", "--out", required=True, type=Path,
                   help="output: NAME.png (a NAME.gif is written beside it) or a folder")
    p.add_argument("--steps", type=int, default=8, help="interpolation frames (default 8)")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)


def run(args: argparse.Namespace) -> int:
    from nfgan.data.images import read_gray_image

    try:
        device = resolve_device(args.device)
    except DeviceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        norm = Normalizer.from_checkpoint(args.model or nfgan_model_path(), device)
        img = read_gray_image(args.image)        # the one image reader (EXIF turn, formats, pixel limit)
        if img.size == (norm.size, norm.size):   # already an aligned crop
            face = np.asarray(img)
        else:
            from nfgan.data.align import FaceAligner

            face = FaceAligner(size=norm.size).align(img).crop
        frames = traverse(norm, face, args.steps)
    except Exception as e:
        print(f"error: {args.image}: {e}", file=sys.stderr)
        return 1
    if args.out.suffix.lower() == ".png":
        png, gif = args.out, args.out.with_suffix(".gif")
    else:
        png, gif = args.out / f"{args.image.stem}_traverse.png", args.out / f"{args.image.stem}_traverse.gif"
    save_image(png, strip([face, *frames]))
    save_gif(gif, frames)
    print(f"wrote {png} and {gif}")
    return 0
