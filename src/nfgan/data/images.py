"""The one image reader of every command: any file Pillow can decode safely, as 8-bit gray.

EXIF orientation is applied, 16-bit and float images keep their full range, transparent pixels become white,
a pixel limit is checked from the header before decoding (decompression bombs), and every failure is an
:class:`ImageReadError` whose ``reason`` is one of :data:`IMAGE_REASONS`.
"""
from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

#: Why an image file cannot be used (``ImageReadError.reason``).
IMAGE_REASONS = {
    "missing file": "the path does not exist or is not a file",
    "empty file": "zero bytes",
    "not an image": "Pillow does not recognise the format",
    "corrupt image": "truncated or damaged image data",
    "too large": "more pixels than --max-pixels (decompression-bomb guard)",
    "unsupported image": "a pixel format that cannot be turned into gray",
}

DEFAULT_MAX_PIXELS = 50_000_000


class ImageReadError(ValueError):
    """An input image that cannot be used; ``reason`` is one of ``REASONS``."""

    def __init__(self, path, reason: str, detail: str = ""):
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))
        self.path = str(path)
        self.reason = reason
        self.detail = detail


def _to_gray(im: Image.Image, path) -> Image.Image:
    """Any Pillow mode -> 8-bit gray 'L', keeping the full dynamic range of 16-bit and float images."""
    mode = im.mode
    if mode == "L":
        return im
    if mode in ("1", "LA", "La", "RGB", "RGBA", "RGBa", "RGBX", "YCbCr", "LAB", "HSV", "CMYK", "P", "PA"):
        if mode in ("P", "PA"):
            im = im.convert("RGBA")
        if im.mode in ("RGBA", "RGBa", "LA", "La"):
            # Transparent pixels become white (like a browser on a white page), not whatever colour they hide.
            rgba = im.convert("RGBA")
            back = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            im = Image.alpha_composite(back, rgba).convert("RGB")
        if im.mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX", "1"):
            im = im.convert("RGB") if im.mode != "1" else im.convert("L")
        return im.convert("L")
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(im).astype(np.float64)
        if arr.size == 0:
            raise ImageReadError(path, "unsupported image", f"mode {mode} with no pixels")
        if mode == "F":
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            if 0.0 <= lo and hi <= 1.0:
                arr = arr * 255.0
            elif hi > lo:
                arr = (arr - lo) / (hi - lo) * 255.0
        elif mode.startswith("I;16") or arr.max() > 255:
            arr = arr / 257.0          # 16-bit full scale 65535 -> 255
        return Image.fromarray(np.clip(np.rint(np.nan_to_num(arr)), 0, 255).astype(np.uint8), "L")
    try:
        return im.convert("L")
    except (ValueError, OSError) as e:
        raise ImageReadError(path, "unsupported image", f"mode {mode}: {e}") from e


def read_gray_image(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open an image file as 8-bit gray (EXIF orientation applied; first frame of animations).

    Raises :class:`ImageReadError` with a reason from ``REASONS``: missing file, empty file, not an image,
    corrupt image (also truncated files), too large (checked from the header, before decoding), unsupported
    image.
    """
    p = Path(path)
    if not p.is_file():
        raise ImageReadError(p, "missing file")
    if p.stat().st_size == 0:
        raise ImageReadError(p, "empty file")
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    saved_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels          # Pillow's own bomb check uses our limit (restored below)
    try:
        return _read_gray(p, max_pixels)
    finally:
        Image.MAX_IMAGE_PIXELS = saved_limit


def _read_gray(p: Path, max_pixels: int) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(p)
        except UnidentifiedImageError as e:
            raise ImageReadError(p, "not an image", "unrecognised format") from e
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageReadError(p, "too large", str(e)) from e
        except (OSError, SyntaxError, ValueError) as e:
            raise ImageReadError(p, "corrupt image", str(e)) from e
        with im:
            w, h = im.size
            if w * h > max_pixels:
                raise ImageReadError(p, "too large", f"{w}x{h} = {w * h / 1e6:.1f} Mpx > {max_pixels / 1e6:.1f} Mpx")
            if w == 0 or h == 0:
                raise ImageReadError(p, "corrupt image", f"size {w}x{h}")
            try:
                im.seek(0)
                im.load()
                im = ImageOps.exif_transpose(im)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
                raise ImageReadError(p, "too large", str(e)) from e
            except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
                raise ImageReadError(p, "corrupt image", str(e) or type(e).__name__) from e
            return _to_gray(im, p)
