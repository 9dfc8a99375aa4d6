"""`nfgan normalize` as a careless user or an attacker would use it: odd names, odd images, odd options, a
full disk. Every bad input is reported with its reason and the others go on; exit status 0 = all done, 1 = some
inputs failed, 2 = nothing could run; never a traceback."""
from __future__ import annotations

import csv
import io
import os
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nfgan.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "london"


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)


def _report(folder: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO((folder / "normalize_report.csv").read_text())))


def _run(capsys, *argv) -> tuple[int, str]:
    rc = main(["normalize", *map(str, argv)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


def test_odd_names_are_written_and_reported(tmp_path, crop, capsys):
    src = tmp_path / "in"
    src.mkdir()
    long_name = src / ("x" * 250 + ".png")             # its output name would pass the 255-byte limit
    Image.fromarray(crop).save(long_name)
    raw = os.path.join(os.fsencode(src), b"face\xff\xfe.png")   # not UTF-8
    with open(raw, "wb") as f:
        Image.fromarray(crop).save(f, format="PNG")
    rc, _ = _run(capsys, src, "-o", tmp_path / "out", "--align", "never")
    assert rc == 0
    outs = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert len(outs) == 2 and all(len(n.encode("utf-8", "surrogateescape")) < 255 for n in outs)
    rows = _report(tmp_path / "out")
    assert [r["status"] for r in rows] == ["ok", "ok"] and any("\\xff" in r["path"] for r in rows)


def test_bad_options_and_outputs_stop_before_anything_is_written(tmp_path, crop, capsys):
    Image.fromarray(crop).save(tmp_path / "a.png")
    Image.fromarray(crop).save(tmp_path / "b.png")
    for batch in ("0", "-3", "many"):
        with pytest.raises(SystemExit) as e:
            main(["normalize", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--batch", batch])
        assert e.value.code == 2
    (tmp_path / "file.txt").write_text("x")
    assert _run(capsys, tmp_path / "a.png", "-o", tmp_path / "file.txt")[0] == 2
    rc, err = _run(capsys, tmp_path / "a.png", "-o", tmp_path / "file.txt" / "sub", "--align", "never")
    assert rc == 2 and "cannot create the output folder" in err
    rc, err = _run(capsys, tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "one.png", "--align", "never")
    assert rc == 2 and "names one file" in err and not (tmp_path / "one.png").exists()
    assert _run(capsys, "-o", tmp_path / "o")[0] == 2                          # no inputs at all
    (tmp_path / "empty").mkdir()
    assert _run(capsys, tmp_path / "empty", "-o", tmp_path / "o")[0] == 2
    assert not (tmp_path / "o").exists()
    # one input, -o a .png name: that file
    assert _run(capsys, tmp_path / "a.png", "-o", tmp_path / "res" / "one.png", "--align", "never")[0] == 0
    assert np.asarray(Image.open(tmp_path / "res" / "one.png")).shape == (64, 64)


def test_a_full_disk_fails_those_faces_and_keeps_the_rest(tmp_path, crop, capsys, monkeypatch):
    import errno

    from nfgan.inference import normalizer

    for n in "abc":
        Image.fromarray(crop).save(tmp_path / f"{n}.png")
    real = normalizer.save_image

    def flaky(path, image):
        if Path(path).name == "b.png":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, image)

    monkeypatch.setattr(normalizer, "save_image", flaky)
    rc, err = _run(capsys, *(tmp_path / f"{n}.png" for n in "abc"), "-o", tmp_path / "o", "--align", "never")
    assert rc == 1 and "No space left on device" in err
    assert sorted(p.name for p in (tmp_path / "o").glob("*.png")) == ["a.png", "c.png"]
    assert [r["status"] for r in _report(tmp_path / "o")] == ["ok", "error", "ok"]


def _bomb_png(path: Path, side: int = 30000) -> None:
    """A tiny PNG that declares side x side gray pixels (all zero, deflated to a few kilobytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    header = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    row = b"\x00" * (side + 1)
    body = zlib.compressobj(9)
    data = b"".join(body.compress(row) for _ in range(64)) + body.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def test_odd_images_are_read_like_prepare_reads_them(tmp_path, crop, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(crop).save(src / "plain.png")
    Image.fromarray(crop.astype(np.uint16) * 257).save(src / "deep.png")        # 16-bit: same picture
    _bomb_png(src / "bomb.png")
    (src / "text.png").write_text("not an image")
    rc, err = _run(capsys, src / "plain.png", src / "deep.png", src / "bomb.png", src / "text.png",
                   "-o", tmp_path / "o", "--align", "never")
    assert rc == 1
    rows = {Path(r["path"]).name: r for r in _report(tmp_path / "o")}
    assert rows["plain.png"]["status"] == rows["deep.png"]["status"] == "ok"
    assert "too large" in rows["bomb.png"]["detail"] and "not an image" in rows["text.png"]["detail"]
    a, b = (np.asarray(Image.open(tmp_path / "o" / n)) for n in ("plain.png", "deep.png"))
    assert np.array_equal(a, b)


def test_an_exif_rotated_photo_is_turned_upright(tmp_path, capsys):
    """A camera stores the pixels sideways with an orientation tag; the face is found after the turn."""
    photo = Image.open(EXAMPLES / "smiling_front" / "006_08.jpg")
    sideways = photo.transpose(Image.Transpose.ROTATE_90)      # what the sensor stored
    exif = Image.Exif()
    exif[0x0112] = 6                                             # 'rotate 90 CW to display'
    sideways.save(tmp_path / "rotated.png", exif=exif)          # lossless, so the two must agree exactly
    photo.save(tmp_path / "upright.png")
    sideways.save(tmp_path / "untagged.png")
    rc, _ = _run(capsys, tmp_path / "rotated.png", tmp_path / "upright.png", tmp_path / "untagged.png",
                 "-o", tmp_path / "o")
    assert rc == 1                                               # the sideways photo without its tag: no face
    a, b = (np.asarray(Image.open(tmp_path / "o" / n)) for n in ("rotated.png", "upright.png"))
    assert np.array_equal(a, b)
    assert "no face" in {Path(r["path"]).name: r for r in _report(tmp_path / "o")}["untagged.png"]["detail"]


def test_face_crops_get_their_landmarks_and_pose_found_on_them(tmp_path, capsys):
    """A folder of 64 px face crops (no manifest): each crop's landmarks and pose are found on the crop, so turned
    faces are frontalised as photos are; --align never keeps the old behaviour (pose unknown, no landmarks)."""
    from nfgan.data.align import FaceAligner, pose_from_yaw
    from nfgan.inference import default_model_path, load_model

    data = Path(__file__).parent / "data"
    aligner = FaceAligner(size=64)
    src = tmp_path / "crops"
    src.mkdir()
    for view in ("front", "right34"):
        Image.fromarray(aligner.align(Image.open(data / f"london_001_{view}.jpg")).crop).save(src / f"{view}.png")
    rc, err = _run(capsys, src, "-o", tmp_path / "o")
    assert rc == 0 and "unknown pose" not in err
    detail = {Path(r["path"]).stem: r["detail"] for r in _report(tmp_path / "o")}
    assert "(pose frontal)" in detail["front"] and "(pose right_3quarter)" in detail["right34"]
    model = load_model(default_model_path())
    for view in ("front", "right34"):
        a = aligner.align_crop(Image.open(src / f"{view}.png"))
        want = model.normalize(a.crop[None], [pose_from_yaw(a.yaw_deg)], [a.flipped], landmarks=a.landmarks68[None])[0]
        assert np.array_equal(np.asarray(Image.open(tmp_path / "o" / f"{view}.png")), want)
    rc, err = _run(capsys, src, "-o", tmp_path / "never", "--align", "never")
    assert rc == 0 and "unknown pose" in err
    turned_as_is = np.asarray(Image.open(tmp_path / "never" / "right34.png"), float)
    frontalised = np.asarray(Image.open(tmp_path / "o" / "right34.png"), float)
    assert np.abs(turned_as_is - frontalised).mean() > 5.0      # frontalising the turned crop changes its output


def test_align_always_aligns_crops_as_photos_and_skips_those_without_a_face(tmp_path, crop, capsys):
    """--align always: a 64 px face crop is aligned as a photo is (not by align_crop), and a crop without a findable
    face is reported and skipped, where --align auto lets it through as it is."""
    from nfgan.data.align import FaceAligner, pose_from_yaw
    from nfgan.inference import default_model_path, load_model

    aligner = FaceAligner(size=64)
    src = tmp_path / "crops"
    src.mkdir()
    photo = Image.open(Path(__file__).parent / "data" / "london_001_front.jpg")
    face = aligner.align(photo).crop
    Image.fromarray(np.roll(face, 4, axis=1)).save(src / "face.png")    # framed 4 px off nfgan's framing
    Image.fromarray(crop).save(src / "noise.png")
    rc, err = _run(capsys, src, "-o", tmp_path / "auto")
    assert rc == 0 and sorted(p.name for p in (tmp_path / "auto").glob("*.png")) == ["face.png", "noise.png"]
    rc, err = _run(capsys, src, "-o", tmp_path / "always", "--align", "always")
    assert rc == 1 and "noise.png: skipped" in err
    status = {Path(r["path"]).name: r["status"] for r in _report(tmp_path / "always")}
    assert status["noise.png"] == "error" and status["face.png"] != "error"
    assert not (tmp_path / "always" / "noise.png").exists()
    a = aligner.align(Image.open(src / "face.png"))
    want = load_model(default_model_path()).normalize(a.crop[None], [pose_from_yaw(a.yaw_deg)], [a.flipped],
                                                      landmarks=a.landmarks68[None])[0]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "always" / "face.png")), want)


def test_crops_of_unknown_pose_warn_and_a_prepared_folder_brings_poses(tmp_path, capsys):
    from conftest import make_prepared

    from nfgan.data.dataset import PreparedDataset
    from nfgan.inference import default_model_path, load_model

    root = make_prepared(tmp_path / "p", subjects=2)
    ds = PreparedDataset(root)
    lm = np.tile(np.linspace(10, 50, 136, dtype=np.float32).reshape(1, 68, 2), (len(ds), 1, 1))
    np.save(root / "landmarks.npy", lm)
    rc, err = _run(capsys, root / "faces", "-o", tmp_path / "crops")        # a folder of crops
    assert rc == 0 and "unknown pose" in err
    assert len(list((tmp_path / "crops").glob("*.png"))) == len(ds)
    rc, err = _run(capsys, "--data", root, "-o", tmp_path / "data")
    assert rc == 0 and "unknown pose" not in err
    want = load_model(default_model_path()).normalize(np.asarray(ds.images), ds.column("pose"),
                                                        ds.column("flipped"), landmarks=lm)
    got = np.stack([np.asarray(Image.open(tmp_path / "data" / f"{r['id']}.png")) for r in ds.records])
    assert np.array_equal(got, want)
    turned = [i for i, p in enumerate(ds.column("pose")) if p != "frontal"]
    crops = np.stack([np.asarray(Image.open(tmp_path / "crops" / f"{r['id']}.png")) for r in ds.records])
    assert np.abs(crops[turned].astype(int) - got[turned].astype(int)).mean() > 1   # frontalised only with --data


def test_a_fifo_or_a_device_among_the_inputs_is_refused_at_once(tmp_path, crop, capsys):
    """Reading a FIFO would wait forever for a writer; the reader refuses it before opening it."""
    from conftest import in_time

    Image.fromarray(crop).save(tmp_path / "a.png")
    os.mkfifo(tmp_path / "pipe.png")
    rc = in_time(lambda: main(["normalize", str(tmp_path / "pipe.png"), "/dev/zero", str(tmp_path / "a.png"),
                               "-o", str(tmp_path / "o"), "--align", "never"]), 60.0)
    assert rc == 1
    rows = {Path(r["path"]).name: r for r in _report(tmp_path / "o")}
    assert "not a regular file" in rows["pipe.png"]["detail"] and "not a regular file" in rows["zero"]["detail"]
    assert rows["a.png"]["status"] == "ok"


def test_sheet_shows_photo_aligned_input_and_output(tmp_path, capsys):
    photo = EXAMPLES / "smiling_left_3quarter" / "124_07.jpg"
    rc, _ = _run(capsys, photo, "-o", tmp_path / "o", "--sheet")
    assert rc == 0
    sheet = np.asarray(Image.open(tmp_path / "o" / "124_07_sheet.png"))
    out = np.asarray(Image.open(tmp_path / "o" / "124_07.png"))
    assert sheet.shape == (160 + 16 + 18, 3 * (160 + 8) + 8)                   # three labelled panels
    third = np.asarray(Image.fromarray(out).resize((160, 160), Image.BICUBIC))
    assert np.array_equal(sheet[8:168, 8 + 2 * 168: 8 + 2 * 168 + 160], third)   # the output, scaled
    assert sheet[170:194].min() < 100                                         # the labels are drawn


def test_two_faces_refused_unless_the_largest_is_asked_for(tmp_path, capsys):
    """A photo with two faces of similar size is refused with the reason; --largest-face takes the larger."""
    a = Image.open(EXAMPLES / "neutral_front" / "006_03.jpg").convert("L")
    b = a.resize((420, 420), Image.LANCZOS)        # the same person smaller: 1.5x less area, no clear winner
    both = Image.new("L", (950, 512), 255)
    both.paste(a, (0, 0))
    both.paste(b, (525, 40))
    both.save(tmp_path / "two.png")
    rc, err = _run(capsys, tmp_path / "two.png", "-o", tmp_path / "o")
    assert rc == 1 and "several faces" in err
    assert _run(capsys, tmp_path / "two.png", "-o", tmp_path / "o2", "--largest-face")[0] == 0
    assert np.asarray(Image.open(tmp_path / "o2" / "two.png")).std() > 10   # a face, not a blank


def test_version(capsys):
    import nfgan

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"nfgan {nfgan.__version__}"
