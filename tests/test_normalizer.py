"""Normalizer API, `nfgan normalize` and `nfgan traverse` on a checkpoint from a tiny real training run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_prepared, p2p_config, tiny_config, tiny_nets
from nfgan.inference.normalizer import Normalizer, NormalizerInputError
from nfgan.rundir import latest_checkpoint
from nfgan.training.loop import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real 2-step NFGAN run whose outputs depend on the input: initialised with a larger spread than
    training would use (init_std 0.1: outputs differ between faces by ~15 gray levels, 0.02 gives one gray face for
    every input), so a wrong input scaling changes the output (checked below)."""
    root = make_prepared(tmp_path_factory.mktemp("norm-data"), subjects=4)
    out = tmp_path_factory.mktemp("norm-run") / "run"
    cfg = tiny_config(root, steps=2)
    cfg["model"]["init_std"] = 0.1
    train(cfg, out, progress=False, feature_nets=tiny_nets())
    return out


@pytest.fixture(scope="module")
def faces(run_dir) -> np.ndarray:
    return np.load(Path(__import__("yaml").safe_load((run_dir / "config.yaml").read_text())["data"]["root"])
                   / "faces.npy")[:5]


def test_normalize_equals_decoder_of_encoder(run_dir, faces):
    norm = Normalizer.from_checkpoint(run_dir)
    assert norm.info["step"] == 2
    out = norm.normalize(faces, batch_size=2)
    assert out.shape == (5, 64, 64) and out.dtype == np.uint8
    x = torch.from_numpy(faces).float()[:, None] / 127.5 - 1
    with torch.no_grad():
        ref = norm.decoder(norm.encoder(x))
    ref_u8 = ((ref.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[:, 0].numpy()
    assert np.abs(out.astype(int) - ref_u8).max() <= 1
    # the fixture model's output depends on its input, so the test can see an input-scaling bug
    pair_diff = [np.abs(out[i].astype(int) - out[j].astype(int)).mean() for i in range(5) for j in range(i)]
    assert min(pair_diff) > 3, pair_diff
    for wrong in (torch.from_numpy(faces).float()[:, None] / 255.0, torch.from_numpy(faces).float()[:, None]):
        with torch.no_grad():
            bad = ((norm.decoder(norm.encoder(wrong)).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[:, 0]
        assert np.abs(bad.numpy().astype(int) - out).mean() > 3
    # batched evaluation uses eval-mode BN: per-face results do not depend on the batch
    assert np.abs(norm.normalize(faces[:1]).astype(int) - out[:1]).max() <= 1
    # same answer from a float input in [-1, 1], a PIL image, one 2-D face, and a file path to the checkpoint
    assert np.abs(norm.normalize(x.numpy()).astype(int) - out).max() <= 1
    assert norm.normalize(Image.fromarray(faces[0])).shape == (64, 64)
    assert np.abs(norm.normalize(faces[0]).astype(int) - out[0]).max() <= 1
    norm2 = Normalizer.from_checkpoint(latest_checkpoint(run_dir))
    assert np.array_equal(norm2.normalize(faces, batch_size=2), out)
    assert norm.encode(faces).shape == (5, 256)
    assert norm.decode(norm.encode(faces)).shape == (5, 64, 64)


def test_bad_inputs_are_explained(run_dir):
    norm = Normalizer.from_checkpoint(run_dir)
    with pytest.raises(NormalizerInputError, match="aligned 64x64"):
        norm.normalize(np.zeros((2, 48, 48), np.uint8))
    with pytest.raises(NormalizerInputError, match=r"\[-1, 1\]"):
        norm.normalize(np.full((1, 64, 64), 200.0, np.float32))


def test_cli_normalize_reports_bad_files_and_goes_on(run_dir, faces, tmp_path):
    from nfgan.cli import main

    inp = tmp_path / "in"
    inp.mkdir()
    for i in range(3):
        Image.fromarray(faces[i]).save(inp / f"face{i}.png")
    (inp / "broken.png").write_bytes(b"not an image")
    Image.fromarray(np.zeros((40, 30), np.uint8)).save(inp / "small.png")
    files = sorted(inp.iterdir())
    rc = main(["normalize", "--model", str(run_dir), *map(str, files), "-o", str(tmp_path / "out"),
               "--align", "never"])
    assert rc == 1
    outs = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert outs == ["face0.png", "face1.png", "face2.png"]
    norm = Normalizer.from_checkpoint(run_dir)
    got = np.asarray(Image.open(tmp_path / "out" / "face1.png"))
    # aligned crops: pose unknown, not mirrored; the CLI runs the three readable crops in one forward pass, and the
    # batch's make-up may move a pixel by one gray level on some CPUs (seen on a Xeon with AMX), not more
    assert np.array_equal(got, norm.normalize(faces[:3])[1])
    assert np.abs(got.astype(int) - norm.normalize(faces[1:2])[0].astype(int)).max() <= 1
    report = (tmp_path / "out" / "normalize_report.csv").read_text()
    assert "broken.png,error" in report and "small.png,error" in report and "use --align" in report


def test_cli_traverse_writes_strip_and_gif(run_dir, faces, tmp_path):
    from nfgan.cli import main

    Image.fromarray(faces[2]).save(tmp_path / "face.png")
    out = tmp_path / "t" / "morph.png"
    assert main(["traverse", "--model", str(run_dir), str(tmp_path / "face.png"), "-o", str(out),
                 "--steps", "5"]) == 0
    strip = np.asarray(Image.open(out))
    assert strip.shape == (64 + 4, 6 * 66 + 2)                         # input + 5 frames
    assert np.array_equal(strip[2:66, 2:66], faces[2])
    norm = Normalizer.from_checkpoint(run_dir)
    first = strip[2:66, 68:132]
    assert np.abs(first.astype(int) - norm.normalize(faces[2]).astype(int)).max() <= 1  # t = 0: Dec(Enc(x))
    from nfgan.inference.traverse import traverse

    frames = traverse(norm, faces[2], 5)
    for k in range(5):
        assert np.array_equal(strip[2:66, 68 + 66 * k: 132 + 66 * k], frames[k])
    gif = Image.open(out.with_suffix(".gif"))   # PIL merges identical consecutive frames: compare the first
    assert np.array_equal(np.asarray(gif.convert("L"))[::2, ::2], frames[0])
    assert gif.n_frames == 1 + sum(not np.array_equal(a, b) for a, b in
                                   zip(list(frames) + list(frames[-2:0:-1]), (list(frames) + list(frames[-2:0:-1]))[1:]))


@pytest.mark.shared_data
def test_cli_aligns_a_london_photo(run_dir, shared_data, tmp_path):
    from nfgan.cli import main

    photo = shared_data / "london" / "neutral_front" / "001_03.jpg"
    rc = main(["normalize", "--model", str(run_dir), str(photo), "-o", str(tmp_path / "o")])
    assert rc == 0
    out = np.asarray(Image.open(tmp_path / "o" / "001_03.png"))
    assert out.shape == (64, 64) and out.std() > 0


def test_shipped_default_model_loads_like_the_evaluator_loads_it(faces):
    from nfgan.inference import load_model
    from nfgan.inference.normalizer import default_model_path

    norm = Normalizer.from_checkpoint()                      # no path: the shipped model
    assert norm.info["checkpoint"] == str(default_model_path()) and norm.info["exported"]
    ref = load_model(default_model_path())
    x = torch.from_numpy(faces[:3]).float()[:, None] / 127.5 - 1
    with torch.no_grad():
        want = ((ref(x).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[:, 0].numpy()
    got = norm.normalize(faces[:3])
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    # outputs are faces, not a constant: they vary across the image
    assert got.std(axis=(1, 2)).min() > 10


def test_shipped_nfgan_has_a_latent_code_and_mirrors_like_the_evaluator(faces):
    from nfgan.inference import load_model
    from nfgan.inference.normalizer import default_model_path, nfgan_model_path

    assert Normalizer.from_checkpoint().kind == "pix2pix"          # the default normaliser: no latent code
    assert nfgan_model_path() != default_model_path()
    norm = Normalizer.from_checkpoint(nfgan_model_path())
    assert norm.kind == "nfgan"
    z = norm.encode(faces[:3])
    assert z.shape == (3, 256)
    assert np.array_equal(norm.decode(z), norm.normalize(faces[:3]))
    gen = load_model(nfgan_model_path())
    poses, flipped = ["left_3quarter", "frontal", "right_3quarter"], [False, False, True]
    got = norm.normalize(faces[:3], poses, flipped)
    assert np.array_equal(got, gen.normalize(faces[:3], poses, flipped))
    # the mirroring rule is applied: an unmirrored left face goes in mirrored, a frontal one as it is
    assert np.array_equal(got[0], norm.normalize(faces[0, :, ::-1].copy()))
    assert np.array_equal(got[1], norm.normalize(faces[1]))
    with pytest.raises(NormalizerInputError, match="3 faces but 1 poses"):
        norm.normalize(faces[:3], ["frontal"])


def test_cli_normalize_defaults_to_the_shipped_model(faces, tmp_path):
    from nfgan.cli import main

    Image.fromarray(faces[0]).save(tmp_path / "a.png")
    assert main(["normalize", str(tmp_path / "a.png"), "-o", str(tmp_path / "out")]) == 0
    assert np.asarray(Image.open(tmp_path / "out" / "a.png")).shape == (64, 64)


def test_cli_treats_an_aligned_left_turned_photo_like_the_evaluator(tmp_path):
    """A shipped left 3/4 example photo: `nfgan normalize` aligns it (the aligner mirrors left-turned faces),
    records its pose and landmarks and applies the model's mirroring and frontalisation rules exactly like
    `nfgan demo` / `nfgan evaluate`, so the mirrored crop is not mirrored back."""
    from nfgan.data.align import align_face, pose_from_yaw
    from nfgan.cli import main
    from nfgan.inference import load_model
    from nfgan.inference.normalizer import default_model_path

    photo = Path(__file__).resolve().parents[1] / "examples" / "london" / "neutral_left_3quarter" / "124_02.jpg"
    assert main(["normalize", str(photo), "-o", str(tmp_path / "o")]) == 0
    got = np.asarray(Image.open(tmp_path / "o" / "124_02.png"))
    face = align_face(photo, size=64)
    pose = pose_from_yaw(face.yaw_deg)
    assert pose.startswith("left") and face.flipped
    gen = load_model(default_model_path())
    assert gen.flip_left_poses and gen.mirror_mask([pose], [face.flipped]).tolist() == [False]
    assert gen.mirror_mask([pose], [False]).tolist() == [True]      # an unmirrored left face would be
    want = gen.normalize(face.crop[None], [pose], [face.flipped], landmarks=face.landmarks68[None])[0]
    assert np.array_equal(got, want)
    # the default normaliser frontalises a turned face first (its landmarks come from the aligner)
    assert gen.frontalize
    from nfgan.data.generator_input import InputRule

    gen.rule = InputRule(gen.rule.flip_left_poses, frontalize=False)
    assert np.abs(gen.normalize(face.crop[None], [pose], [face.flipped])[0].astype(int) - got).mean() > 2
    assert "(pose left_3quarter)" in (tmp_path / "o" / "normalize_report.csv").read_text()


def test_pix2pix_export_normalizes_in_the_api_and_the_cli_but_has_no_latent_code(tmp_path):
    from nfgan.checkpoint import CheckpointError
    from nfgan.inference import export_model

    root = make_prepared(tmp_path / "d", subjects=4)
    cfg = p2p_config(root, steps=1, batch_size=4)
    train(cfg, tmp_path / "run", progress=False)
    export_model(tmp_path / "run", tmp_path / "p2p.safetensors")
    from nfgan.cli import main
    from nfgan.inference import load_model

    faces = np.load(root / "faces.npy")[:2]
    norm = Normalizer.from_checkpoint(tmp_path / "p2p.safetensors")
    assert norm.kind == "pix2pix" and norm.info["exported"]
    with pytest.raises(CheckpointError, match="pix2pix model has no latent code"):
        norm.encode(faces)
    with pytest.raises(CheckpointError, match="no latent code"):
        norm.decode(torch.zeros(1, 256))
    # the API and `nfgan normalize` give the evaluator's output, for uint8 and float input alike
    want = load_model(tmp_path / "p2p.safetensors").normalize(faces)
    assert np.array_equal(norm.normalize(faces), want)
    assert np.array_equal(norm.normalize(torch.from_numpy(faces).float() / 127.5 - 1), want)
    for i, f in enumerate(faces):
        Image.fromarray(f).save(tmp_path / f"f{i}.png")
    assert main(["normalize", "--model", str(tmp_path / "p2p.safetensors"), str(tmp_path / "f0.png"),
                 str(tmp_path / "f1.png"), "-o", str(tmp_path / "out")]) == 0
    got = np.stack([np.asarray(Image.open(tmp_path / "out" / f"f{i}.png")) for i in range(2)])
    assert np.array_equal(got, want)


def test_cli_traverse_defaults_to_the_shipped_nfgan(faces, tmp_path):
    """The default normaliser has no latent code, so `nfgan traverse` falls back to the shipped NFGAN."""
    from nfgan.cli import main
    from nfgan.inference.normalizer import nfgan_model_path
    from nfgan.inference.traverse import traverse

    Image.fromarray(faces[0]).save(tmp_path / "face.png")
    assert main(["traverse", str(tmp_path / "face.png"), "-o", str(tmp_path / "t.png"), "--steps", "3"]) == 0
    strip = np.asarray(Image.open(tmp_path / "t.png"))
    frames = traverse(Normalizer.from_checkpoint(nfgan_model_path()), faces[0], 3)
    assert np.array_equal(strip[2:66, 68 + 66 * 2: 132 + 66 * 2], frames[2])


def test_normalize_photos_is_the_cli_in_one_call(tmp_path):
    """One call aligns, estimates pose and landmarks and normalises, exactly as `nfgan normalize` does; photos
    that fail keep their place with the reason, and the others go on."""
    import nfgan
    from nfgan.cli import main

    examples = Path(__file__).resolve().parents[1] / "examples" / "london"
    photos = [examples / "neutral_left_3quarter" / "124_02.jpg", examples / "smiling_front" / "006_08.jpg"]
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(np.full((200, 200), 128, np.uint8)).save(tmp_path / "blank.png")
    norm = nfgan.Normalizer.from_checkpoint()
    res = norm.normalize_photos([photos[0], tmp_path / "broken.jpg", np.asarray(Image.open(photos[1])),
                                 tmp_path / "blank.png"])
    assert res.ok == [True, False, True, False]
    assert "not an image" in res.errors[1] and "no face" in res.errors[3]
    assert res.faces[1] is None and res.faces[3] is None
    assert res.poses[0] == "left_3quarter" and res.aligned[0].flipped
    assert main(["normalize", str(photos[0]), str(photos[1]), "-o", str(tmp_path / "o")]) == 0
    for i, p in ((0, photos[0]), (2, photos[1])):
        assert np.array_equal(res.faces[i], np.asarray(Image.open(tmp_path / "o" / f"{p.stem}.png")))
    # a single photo path is accepted as well
    assert np.array_equal(norm.normalize_photos(photos[1]).faces[0], res.faces[2])
    # a photo that already is a 64 px crop: its landmarks are found on it, its pixels kept, as the CLI does
    crop = res.aligned[2].crop
    Image.fromarray(crop).save(tmp_path / "crop.png")
    one = norm.normalize_photos(crop)
    assert one.ok == [True] and one.aligned[0].method == "crop" and np.array_equal(one.aligned[0].crop, crop)
    assert main(["normalize", str(tmp_path / "crop.png"), "-o", str(tmp_path / "c")]) == 0
    assert np.array_equal(one.faces[0], np.asarray(Image.open(tmp_path / "c" / "crop.png")))


def test_traverse_between_two_people_shows_a_visible_morph(tmp_path, capsys, monkeypatch):
    """The shipped NFGAN: morphing one person into another changes the face visibly and steadily."""
    from nfgan.cli import main
    from nfgan.inference.normalizer import nfgan_model_path
    from nfgan.inference.traverse import traverse

    ex = Path(__file__).resolve().parents[1] / "examples" / "london"
    a, b = ex / "neutral_front" / "006_03.jpg", ex / "smiling_front" / "124_08.jpg"
    assert main(["traverse", str(a), str(b), "-o", str(tmp_path / "m.png"), "--steps", "6"]) == 0
    out = capsys.readouterr()
    strip = np.asarray(Image.open(tmp_path / "m.png"))
    assert strip.shape == (64 + 4, 8 * 66 + 2)                          # A | 6 frames | B
    frames = [strip[2:66, 68 + 66 * k: 132 + 66 * k].astype(float) for k in range(6)]
    change = np.abs(frames[-1] - frames[0]).mean()
    assert change > 10, change
    steps = [np.abs(frames[k + 1] - frames[k]).mean() for k in range(5)]
    assert max(steps) < 0.6 * change                                    # gradual, not a jump
    assert np.abs(frames[-1] - frames[0]).mean() == pytest.approx(float(out.out.split("frame: ")[1].split()[0]),
                                                                   abs=0.1)
    # one face: the paper's walk to its normalised face's code; when that barely moves the command says so
    from nfgan.data.align import align_face
    from nfgan.inference import traverse as T

    alone = traverse(Normalizer.from_checkpoint(nfgan_model_path()), align_face(a).crop, 6)
    alone_change = np.abs(alone[-1].astype(float) - alone[0].astype(float)).mean()
    monkeypatch.setattr(T, "VISIBLE", alone_change + 1)
    assert main(["traverse", str(a), "-o", str(tmp_path / "one.png"), "--steps", "6"]) == 0
    assert "give a second face" in capsys.readouterr().err
