"""nfgan.data.images.read_gray_image: which files are decoded, which are refused (and why), and how unusual
pixel formats become 8-bit gray."""
from __future__ import annotations

import os
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from conftest import in_time
from nfgan.data.images import IMAGE_FORMATS, IMAGE_REASONS, ImageReadError, read_gray_image

DATA = Path(__file__).parent / "data"
FRONT = DATA / "london_001_front.jpg"


def _refused(path, **kw) -> ImageReadError:
    with pytest.raises(ImageReadError) as e:
        read_gray_image(path, **kw)
    assert str(path) in str(e.value)             # the message names the file
    assert e.value.reason in IMAGE_REASONS
    return e.value


def _pattern(w: int = 80, h: int = 48) -> np.ndarray:
    """A non-square, asymmetric gray test image (blocks, so JPEG keeps it well)."""
    y, x = np.mgrid[0:h, 0:w]
    img = (x // 8 * 20 + y // 8 * 7) % 256
    img[:8, :8] = 255                              # a marker in the top-left corner
    return img.astype(np.uint8)


# ------------------------------------------------------------------------------------------------ formats

def test_eps_is_refused_without_calling_ghostscript(tmp_path, monkeypatch):
    from PIL import EpsImagePlugin

    def no_ghostscript(*args, **kwargs):
        raise AssertionError("Ghostscript was called")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", no_ghostscript)
    eps = tmp_path / "face.eps"
    eps.write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n"
                   "newpath 0 0 moveto 64 64 lineto stroke\nshowpage\n%%EOF\n")
    err = _refused(eps)
    assert err.reason == "unsupported format" and "EPS" in err.detail
    ps = tmp_path / "face.jpg"                     # the name does not matter, the content does
    ps.write_bytes(eps.read_bytes())
    assert _refused(ps).reason == "unsupported format"


@pytest.mark.parametrize("fmt, suffix", [("ICO", ".ico"), ("PCX", ".pcx"), ("SGI", ".sgi"), ("DDS", ".dds")])
def test_other_pillow_formats_are_refused_by_name(tmp_path, fmt, suffix):
    path = tmp_path / f"img{suffix}"
    Image.fromarray(_pattern(32, 32)).convert("RGB" if fmt == "DDS" else "L").save(path, fmt)
    assert Image.open(path).format == fmt          # Pillow itself would decode it
    err = _refused(path)
    assert err.reason == "unsupported format" and fmt in err.detail
    renamed = tmp_path / "img.png"
    renamed.write_bytes(path.read_bytes())
    assert _refused(renamed).reason == "unsupported format"


def test_tga_without_a_signature_is_not_decoded(tmp_path):
    path = tmp_path / "img.tga"
    Image.fromarray(_pattern(32, 32)).save(path, "TGA")
    assert Image.open(path).format == "TGA"
    assert _refused(path).reason in ("not an image", "unsupported format")


@pytest.mark.parametrize("fmt, suffix, mode", [
    ("JPEG", ".jpg", "L"), ("PNG", ".png", "L"), ("BMP", ".bmp", "L"), ("TIFF", ".tif", "L"),
    ("GIF", ".gif", "L"), ("WEBP", ".webp", "L"), ("PPM", ".pgm", "L"), ("PPM", ".ppm", "RGB"),
    ("PPM", ".pbm", "1"),
])
def test_allowed_formats_are_read(tmp_path, fmt, suffix, mode):
    assert fmt in IMAGE_FORMATS
    arr = _pattern()
    if mode == "1":
        arr = np.where(arr > 127, 255, 0).astype(np.uint8)
    path = tmp_path / f"img{suffix}"
    kw = {"lossless": True} if fmt == "WEBP" else {"quality": 98} if fmt == "JPEG" else {}
    Image.fromarray(arr).convert(mode).save(path, fmt, **kw)
    got = read_gray_image(path)
    assert got.mode == "L" and got.size == (80, 48)
    assert np.abs(np.asarray(got, dtype=float) - arr).mean() < 3


# ----------------------------------------------------------------------------------- not a regular file

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    err = in_time(lambda: _refused(fifo))       # a blocking open() would never return: nobody writes
    assert err.reason == "not a regular file" and "FIFO" in err.detail


def test_folder_and_device_are_refused(tmp_path):
    folder = tmp_path / "photo.jpg"
    folder.mkdir()
    err = _refused(folder)
    assert err.reason == "not a regular file" and "folder" in err.detail
    if Path("/dev/zero").exists():
        err = in_time(lambda: _refused("/dev/zero"))   # reading it would never end
        assert err.reason == "not a regular file" and "device" in err.detail


def test_missing_empty_and_linked(tmp_path):
    assert _refused(tmp_path / "nope.jpg").reason == "missing file"
    (tmp_path / "empty.png").write_bytes(b"")
    assert _refused(tmp_path / "empty.png").reason == "empty file"
    if sys.platform != "win32":
        (tmp_path / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
        assert _refused(tmp_path / "dangling.jpg").reason == "missing file"
        (tmp_path / "link.jpg").symlink_to(FRONT)                   # a link to a photo is a photo
        assert read_gray_image(tmp_path / "link.jpg").size == (256, 256)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    path = tmp_path / "locked.jpg"
    path.write_bytes(FRONT.read_bytes())
    path.chmod(0)
    try:
        err = _refused(path)
        assert err.reason == "unreadable file" and err.detail
    finally:
        path.chmod(0o644)


# ------------------------------------------------------------------------------------------ pixel formats

def test_16bit_png_and_tiff_keep_full_range(tmp_path):
    arr = _pattern()
    deep = (arr.astype(np.uint16) * 257 + (arr < 255) * 100).astype(np.uint16)   # full range, low byte set
    Image.fromarray(deep).save(tmp_path / "g16.png")
    Image.fromarray(deep).save(tmp_path / "g16.tif")
    for name in ("g16.png", "g16.tif"):
        assert Image.open(tmp_path / name).mode.startswith("I")
        got = np.asarray(read_gray_image(tmp_path / name)).astype(int)
        assert np.abs(got - arr).max() <= 1, name          # not clipped to 255, not wrapped


def test_float_tiff(tmp_path):
    arr = _pattern().astype(np.float32)
    Image.fromarray(arr / 255.0, "F").save(tmp_path / "unit.tif")           # 0..1
    wide = arr / 255.0 * 8.0 - 3.0                                          # -3..5: min-max scaled
    wide[0, -1] = np.nan
    Image.fromarray(wide, "F").save(tmp_path / "wide.tif")
    assert Image.open(tmp_path / "unit.tif").mode == "F"
    got = np.asarray(read_gray_image(tmp_path / "unit.tif")).astype(int)
    assert np.abs(got - arr).max() <= 1
    got = np.asarray(read_gray_image(tmp_path / "wide.tif")).astype(float)
    lo, hi = np.nanmin(wide), np.nanmax(wide)
    want = (wide - lo) / (hi - lo) * 255
    ok = np.isfinite(want)
    assert np.abs(got[ok] - want[ok]).max() <= 1 and got.min() >= 0 and got.max() <= 255


def test_cmyk_jpeg(tmp_path):
    rgb = Image.open(FRONT).convert("RGB")
    rgb.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    got = read_gray_image(tmp_path / "cmyk.jpg")
    assert got.mode == "L" and got.size == rgb.size
    assert np.abs(np.asarray(got, dtype=float) - np.asarray(rgb.convert("L"), dtype=float)).mean() < 12


def test_palette_png_with_transparency_is_white_where_transparent(tmp_path):
    idx = np.zeros((48, 80), np.uint8)
    idx[:, 40:] = 1
    idx[:24, :40] = 2
    pal = Image.fromarray(idx, "P")
    pal.putpalette([0, 0, 0, 200, 0, 0, 30, 30, 30] + [0] * (3 * 253))
    pal.save(tmp_path / "pal.png", transparency=0)                     # index 0 (black) is transparent
    assert Image.open(tmp_path / "pal.png").mode == "P"
    got = np.asarray(read_gray_image(tmp_path / "pal.png")).astype(int)
    red = int(Image.new("RGB", (1, 1), (200, 0, 0)).convert("L").getpixel((0, 0)))
    assert (got[24:, :40] == 255).all()           # transparent -> white, not the black it hides
    assert (got[:, 40:] == red).all() and (got[:24, :40] == 30).all()


@pytest.mark.parametrize("orientation, stored_as", [(6, Image.ROTATE_90), (8, Image.ROTATE_270),
                                                     (3, Image.ROTATE_180)])
def test_exif_orientation_is_applied(tmp_path, orientation, stored_as):
    upright = _pattern()
    stored = Image.fromarray(upright).transpose(stored_as)   # what a camera held sideways writes
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=98)
    assert Image.open(tmp_path / "rot.jpg").getexif()[0x0112] == orientation
    got = read_gray_image(tmp_path / "rot.jpg")
    assert got.size == (80, 48)
    assert np.abs(np.asarray(got, dtype=float) - upright).mean() < 3
    assert np.asarray(got)[:6, :6].mean() > 200              # the marker is back in the top-left corner


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb_png(path: Path, side: int = 30000) -> None:
    """A valid 1-bit PNG of side x side black pixels: about 0.1 MB on disk, 900 MB once decoded to gray."""
    row = b"\x00" * (1 + (side + 7) // 8)                   # filter byte + packed bits
    comp = zlib.compressobj(9)
    block = row * 500
    parts = [comp.compress(block) for _ in range(side // 500)]
    parts.append(comp.compress(row * (side % 500)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(parts))
                     + _png_chunk(b"IEND", b""))


def test_decompression_bomb_is_refused_from_the_header(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.png"
    _bomb_png(bomb)
    assert bomb.stat().st_size < 1_000_000

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    saved = Image.MAX_IMAGE_PIXELS
    t0 = time.perf_counter()
    err = _refused(bomb)                                    # Pillow's limit set to ours: refused in open()
    assert err.reason == "too large" and time.perf_counter() - t0 < 2.0
    err = _refused(bomb, max_pixels=600_000_000)            # under Pillow's 2x limit: its warning, an error here
    assert err.reason == "too large" and "900000000" in err.detail
    assert Image.MAX_IMAGE_PIXELS == saved                  # the global limit is restored
