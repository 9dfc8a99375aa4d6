"""The one image reader of every command: photo files in a short list of formats, as 8-bit gray.

Only regular files are opened (a FIFO, a folder or a device is refused before anything is read), and only the
formats of :data:`IMAGE_FORMATS` are decoded: every other format Pillow knows (EPS and PS, which Pillow hands
to Ghostscript, PDF, PSD, ICO, ...) is refused by name. EXIF orientation is applied, 16-bit and float images
keep their full range, transparent pixels become white, a pixel limit is checked from the header before
decoding (decompression bombs), and every failure is an :class:`ImageReadError` whose ``reason`` is one of
:data:`IMAGE_REASONS`.
"""
from __future__ import annotations

import errno
import os
import stat
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

#: Why an image file cannot be used (``ImageReadError.reason``).
IMAGE_REASONS = {
    "missing file": "the path does not exist",
    "unreadable file": "no permission to read it, or the system could not open it",
    "not a regular file": "a folder, FIFO, socket or device, refused before reading",
    "empty file": "zero bytes",
    "not an image": "not a recognised image format",
    "unsupported format": "an image format that is not read (only the formats of IMAGE_FORMATS are)",
    "corrupt image": "truncated or damaged image data",
    "too large": "more pixels than --max-pixels (decompression-bomb guard)",
    "unsupported image": "a pixel format that cannot be turned into gray",
}

#: The Pillow formats that are decoded (PPM also reads PGM, PBM and PFM; JPEG also reads MPO).
IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "GIF", "WEBP", "PPM")

_OPENED_FORMATS = frozenset(IMAGE_FORMATS) | {"MPO"}     # Pillow names a multi-picture JPEG "MPO"

DEFAULT_MAX_PIXELS = 50_000_000


class ImageReadError(ValueError):
    """An input image that cannot be used; ``reason`` is one of ``IMAGE_REASONS``."""

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
            finite = arr[np.isfinite(arr)]
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
            arr = np.nan_to_num(arr, nan=lo, posinf=hi, neginf=lo)
            if 0.0 <= lo and hi <= 1.0:
                arr = arr * 255.0
            elif hi > lo:
                arr = (arr - lo) / (hi - lo) * 255.0
        elif mode.startswith("I;16") or arr.max() > 255:
            arr = arr / 257.0          # 16-bit full scale 65535 -> 255
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
    try:
        return im.convert("L")
    except (ValueError, OSError) as e:
        raise ImageReadError(path, "unsupported image", f"mode {mode}: {e}") from e


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _sniff_format(head: bytes) -> str | None:
    """The Pillow format whose signature ``head`` carries (checked on the bytes only, nothing is parsed)."""
    Image.init()
    for name, (_factory, accept) in Image.OPEN.items():
        if accept is None:
            continue
        try:
            if accept(head):
                return name
        except Exception:  # a plug-in's signature check must never break the reader
            continue
    return None


def read_gray_image(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open an image file as 8-bit gray (EXIF orientation applied; first frame of animations).

    Raises :class:`ImageReadError` with a reason from ``IMAGE_REASONS``: missing file, unreadable file, not a
    regular file (checked before opening, so a FIFO never blocks), empty file, not an image, unsupported
    format (a format outside :data:`IMAGE_FORMATS`), corrupt image (also truncated files), too large (checked
    from the header, before decoding), unsupported image.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise ImageReadError(p, "missing file") from None
    except ValueError as e:                  # a NUL character in the name
        raise ImageReadError(p, "missing file", str(e)) from e
    except OSError as e:                     # a link loop, a name too long, no permission on a folder
        missing = e.errno in (errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG)
        raise ImageReadError(p, "missing file" if missing else "unreadable file", e.strerror or str(e)) from e
    if not stat.S_ISREG(st.st_mode):
        raise ImageReadError(p, "not a regular file", _file_kind(st.st_mode))
    if st.st_size == 0:
        raise ImageReadError(p, "empty file")
    try:
        # O_NONBLOCK: should the path have become a FIFO since the stat, opening it still returns at once.
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise ImageReadError(p, "missing file") from None
    except OSError as e:
        raise ImageReadError(p, "unreadable file", e.strerror or str(e)) from e
    with open(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ImageReadError(p, "not a regular file", _file_kind(st.st_mode))
        if st.st_size == 0:
            raise ImageReadError(p, "empty file")
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        saved_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels          # Pillow's own bomb check uses our limit (restored below)
        try:
            return _read_gray(p, f, max_pixels)
        finally:
            Image.MAX_IMAGE_PIXELS = saved_limit


def _read_gray(p: Path, f, max_pixels: int) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(f, formats=IMAGE_FORMATS)
        except UnidentifiedImageError as e:
            f.seek(0)
            other = _sniff_format(f.read(16))
            if other in _OPENED_FORMATS:
                raise ImageReadError(p, "corrupt image", f"{other} signature but an unreadable header") from e
            if other is not None:
                raise ImageReadError(p, "unsupported format",
                                     f"{other} files are not read; formats read: {', '.join(IMAGE_FORMATS)}") from e
            raise ImageReadError(p, "not an image", "unrecognised format") from e
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageReadError(p, "too large", str(e)) from e
        except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
            raise ImageReadError(p, "corrupt image", str(e) or type(e).__name__) from e
        with im:
            if im.format not in _OPENED_FORMATS:
                raise ImageReadError(p, "unsupported format", f"{im.format} files are not read")
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
            except MemoryError as e:
                raise ImageReadError(p, "too large", "out of memory decoding") from e
            except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
                raise ImageReadError(p, "corrupt image", str(e) or type(e).__name__) from e
            return _to_gray(im, p)
