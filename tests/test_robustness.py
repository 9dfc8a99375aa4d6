"""Bad and unusual input files: each gets a clear reason, or is read correctly (nfgan.data.prepare)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nfgan.data.align import FaceAligner
from nfgan.data.images import ImageReadError, read_gray_image
from nfgan.data.prepare import prepare_dataset
from nfgan.data.schema import FaceRecord

DATA = Path(__file__).parent / "data"
FRONT = DATA / "london_001_front.jpg"


@pytest.fixture(scope="module")
def gray_face() -> np.ndarray:
    return np.asarray(Image.open(FRONT).convert("L"))


@pytest.fixture(scope="module")
def reference_crop() -> np.ndarray:
    return FaceAligner(size=64).align(Image.open(FRONT)).crop.astype(float)


def _reason(path, **kw) -> str:
    with pytest.raises(ImageReadError) as e:
        read_gray_image(path, **kw)
    assert str(path) in str(e.value)        # the message names the file
    return e.value.reason


def test_missing_and_empty(tmp_path):
    assert _reason(tmp_path / "nope.jpg") == "missing file"
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert _reason(tmp_path / "empty.jpg") == "empty file"


def test_not_an_image(tmp_path):
    (tmp_path / "notes.jpg").write_text("this is not a photo\n" * 20)
    assert _reason(tmp_path / "notes.jpg") == "not an image"


def test_truncated_jpeg(tmp_path):
    data = FRONT.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert _reason(tmp_path / "cut.jpg") == "corrupt image"


def test_corrupt_png(tmp_path, gray_face):
    Image.fromarray(gray_face).save(tmp_path / "ok.png")
    data = bytearray((tmp_path / "ok.png").read_bytes())
    data[100:400] = bytes(300)                     # zero out part of the compressed stream
    (tmp_path / "bad.png").write_bytes(bytes(data))
    assert _reason(tmp_path / "bad.png") == "corrupt image"


def test_too_large_checked_before_decoding(tmp_path):
    big = tmp_path / "big.png"
    Image.new("L", (8000, 7000), 128).save(big)     # 56 Mpx, compresses to a small file
    assert _reason(big) == "too large"
    assert _reason(FRONT, max_pixels=10_000) == "too large"


def test_16bit_gray_keeps_full_range(tmp_path, gray_face):
    img16 = gray_face.astype(np.uint16) * 257
    Image.fromarray(img16).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    got = np.asarray(read_gray_image(tmp_path / "g16.png"))
    assert np.abs(got.astype(int) - gray_face).max() <= 1


def test_cmyk_palette_rgba(tmp_path, gray_face, reference_crop):
    rgb = Image.open(FRONT).convert("RGB")
    rgb.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    rgb.convert("P", palette=Image.ADAPTIVE, colors=256).save(tmp_path / "pal.png")
    rgba = rgb.convert("RGBA")
    alpha = np.full(gray_face.shape, 255, np.uint8)
    alpha[:, :20] = 0                                # a transparent strip on the left
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(tmp_path / "rgba.png")
    aligner = FaceAligner(size=64)
    for name in ("cmyk.jpg", "pal.png", "rgba.png"):
        img = read_gray_image(tmp_path / name)
        assert img.mode == "L" and img.size == (256, 256)
        assert np.abs(np.asarray(img, dtype=float) - gray_face).mean() < 12, name
        crop = aligner.align(img).crop.astype(float)
        assert np.abs(crop - reference_crop).mean() < 8, name
    assert (np.asarray(read_gray_image(tmp_path / "rgba.png"))[:, :20] == 255).all()   # transparent -> white


def test_exif_rotated_photo_is_turned_upright(tmp_path, reference_crop):
    img = Image.open(FRONT).convert("RGB")
    # store the pixels rotated 90 deg counter-clockwise, with EXIF Orientation 6 ("rotate 90 CW to display")
    stored = img.transpose(Image.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "exif.jpg", exif=exif.tobytes(), quality=95)
    read = read_gray_image(tmp_path / "exif.jpg")
    assert read.size == img.size
    assert np.abs(np.asarray(read, dtype=float) - np.asarray(img.convert("L"), dtype=float)).mean() < 4
    crop = FaceAligner(size=64).align(read).crop.astype(float)
    inner = (slice(8, 56), slice(8, 56))            # the face; borders (hair) react most to re-encoding
    assert np.abs(crop[inner] - reference_crop[inner]).mean() < 6


def test_prepare_reports_every_bad_kind(tmp_path, gray_face):
    src = tmp_path / "src"
    src.mkdir()
    data = FRONT.read_bytes()
    files = {
        "good.jpg": data,
        "empty.jpg": b"",
        "text.jpg": b"hello\n" * 50,
        "cut.jpg": data[: len(data) // 3],
    }
    for name, content in files.items():
        (src / name).write_bytes(content)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 300), dtype=np.uint8)).save(src / "noise.png")
    Image.new("L", (8000, 7000), 0).save(src / "huge.png")
    Image.fromarray(gray_face.astype(np.uint16) * 257).save(src / "deep.png")
    (src / "folder.jpg").mkdir()
    (src / "vector.jpg").write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    names = sorted(list(files) + ["noise.png", "huge.png", "deep.png", "missing.jpg", "folder.jpg", "vector.jpg"])
    records = [FaceRecord(str(src / n), "s1", "neutral") for n in names]
    res = prepare_dataset(records, tmp_path / "out", workers=1, progress=False, src_root=src)
    with open(tmp_path / "out" / "prepare_report.csv", newline="") as f:
        report = {Path(r["source_path"]).name: r for r in csv.DictReader(f)}
    expected = {"empty.jpg": "empty file", "text.jpg": "not an image", "cut.jpg": "corrupt image",
                "noise.png": "no face", "huge.png": "too large", "missing.jpg": "missing file",
                "folder.jpg": "not a regular file", "vector.jpg": "unsupported format"}
    assert {k: v["reason"] for k, v in report.items()} == expected
    assert all(v["detail"] or v["reason"] in ("empty file", "missing file") for v in report.values())
    with open(tmp_path / "out" / "manifest.csv", newline="") as f:
        aligned = sorted(Path(r["source_path"]).name for r in csv.DictReader(f))
    assert aligned == ["deep.png", "good.jpg"]
    assert res.aligned == 2 and res.failed == 8 and res.reasons["corrupt image"] == 1
