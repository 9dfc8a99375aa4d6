"""The identity pull of turned outputs (``nfgan.inference.identity_pull``): what it changes on real faces (the
aligned London example photos), where it is recorded, and its errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import REPO
from nfgan.checkpoint import EXPORT_KEY
from nfgan.data.frontalize import is_turned
from nfgan.inference import export_model, load_model
from nfgan.inference.identity_pull import IdentityPull, IdentityPullError, descriptor_net
from nfgan.pixels import to_unit_batch


@pytest.fixture(scope="module")
def faces(london_examples):
    """The aligned example photos (conftest) and which of them are turned."""
    crops, poses, flipped, lms = london_examples
    turned = np.array([is_turned(p) for p in poses])
    assert turned.sum() >= 6 and (~turned).sum() >= 2
    return crops, poses, flipped, lms, turned


@pytest.fixture(scope="module")
def pulled(faces):
    """The default generator with a 5-step pull: its outputs with the pull on and off."""
    crops, poses, flipped, lms, _ = faces
    g = load_model("default")
    g.pull = IdentityPull(steps=5)
    return g, g.normalize(crops, poses, flipped, landmarks=lms), g.normalize(crops, poses, flipped, landmarks=lms,
                                                                            identity_pull=False)


def _dlib_distance(outputs: np.ndarray, photos: np.ndarray) -> np.ndarray:
    net = descriptor_net(torch.device("cpu"))
    with torch.no_grad():
        return (net.descriptor(to_unit_batch(outputs)) - net.descriptor(to_unit_batch(photos))).norm(dim=1).numpy()


def test_pull_moves_turned_outputs_towards_the_photos_identity_and_leaves_frontal_ones(faces, pulled):
    crops, _, _, _, turned = faces
    _, on, off = pulled
    assert np.array_equal(on[~turned], off[~turned])          # frontal faces: the plain generator's, byte for byte
    changed = np.abs(on[turned].astype(int) - off[turned].astype(int)).reshape(int(turned.sum()), -1).mean(1)
    assert (changed > 1.0).all()                               # every turned face is redrawn, not rounded
    before, after = _dlib_distance(off[turned], crops[turned]), _dlib_distance(on[turned], crops[turned])
    assert after.mean() < 0.8 * before.mean()
    assert (after < before).mean() >= 0.8


def test_pull_runs_under_the_callers_no_grad_and_inference_mode(faces, pulled):
    """The same batch with and without the caller's mode: the same faces, byte for byte, and pulled (not the plain
    outputs). Against a batch of another size the comparison would not be exact: sums whose order depends on the
    batch round differently, and the pull's five Adam steps carry that to a few gray levels."""
    crops, poses, flipped, lms, turned = faces
    g, _, off = pulled
    i = np.flatnonzero(turned)[:2]
    args = (crops[i], [poses[k] for k in i], [flipped[k] for k in i])
    want = g.normalize(*args, landmarks=lms[i])
    assert np.abs(want.astype(int) - off[i].astype(int)).reshape(2, -1).mean(1).min() > 1.0
    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            got = g.normalize(*args, landmarks=lms[i])
        assert np.array_equal(got, want)


def test_pull_fits_each_face_on_its_own(faces, pulled):
    crops, poses, flipped, lms, turned = faces
    g, on, _ = pulled
    i = int(np.flatnonzero(turned)[0])
    alone = g.normalize(crops[i:i + 1], poses[i:i + 1], flipped[i:i + 1], landmarks=lms[i:i + 1])
    assert np.abs(alone[0].astype(int) - on[i].astype(int)).max() <= 1   # batch or alone: float rounding only


@pytest.mark.filterwarnings("ignore:.*without landmarks go to the generator")
def test_no_poses_means_no_turned_faces_and_no_pull(faces, pulled):
    crops = faces[0]
    g, _, _ = pulled
    assert np.array_equal(g.normalize(crops), g.normalize(crops, identity_pull=False))


def test_pull_is_recorded_in_the_model_file_and_read_back(tmp_path):
    g = load_model("default")
    with_pull = export_model(g, tmp_path / "pull.safetensors", identity_pull=IdentityPull(steps=3, step_size=0.1))
    back = load_model(with_pull)
    assert back.pull == IdentityPull(steps=3, step_size=0.1, levels=3)
    dropped = export_model(back, tmp_path / "plain.safetensors", identity_pull=False)
    assert load_model(dropped).pull is None
    kept = export_model(load_model(with_pull), tmp_path / "kept.safetensors")
    assert load_model(kept).pull == back.pull


@pytest.mark.parametrize("record, needle", [({"steps": 0, "step_size": 0.05, "levels": 3}, "steps must be 1-100"),
                                            ({"steps": 5, "step_size": 2.0, "levels": 3}, "step_size"),
                                            ({"steps": 5, "levels": 3}, "must be a record"),
                                            ({"steps": "many", "step_size": 0.05, "levels": 3}, "many")])
def test_a_malformed_record_names_the_file(tmp_path, record, needle):
    out = export_model(load_model("default"), tmp_path / "bad.safetensors", identity_pull=None)
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(out), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        info = json.loads(f.metadata()[EXPORT_KEY])
    info["identity_pull"] = record
    save_file(tensors, str(out), metadata={EXPORT_KEY: json.dumps(info)})
    with pytest.raises(IdentityPullError, match=needle) as e:
        load_model(out)
    assert "bad.safetensors" in str(e.value)


def test_the_nfgan_has_no_encoder_blocks_to_pull():
    with pytest.raises(IdentityPullError, match="U-Net"):
        IdentityPull().check(load_model("nfgan").nets["enc"])


def test_tool_options():
    assert IdentityPull.from_options(False) is None
    assert IdentityPull.from_options(True, steps=7) == IdentityPull(steps=7)
    with pytest.raises(IdentityPullError, match="need --identity-pull"):
        IdentityPull.from_options(False, steps=7)


def test_normalize_cli_runs_the_pull_unless_told_not_to(tmp_path, capsys):
    from PIL import Image

    from nfgan.cli import main

    photos = [REPO / "tests" / "data" / n for n in ("london_001_front.jpg", "london_001_right34.jpg")]
    for flag, out in (([], "on"), (["--no-identity-pull"], "off")):
        assert main(["normalize", *map(str, photos), "-o", str(tmp_path / out), *flag]) == 0
    capsys.readouterr()
    face = {(p.stem, o): np.asarray(Image.open(tmp_path / o / f"{p.stem}.png")) for p in photos for o in ("on", "off")}
    assert np.array_equal(face["london_001_front", "on"], face["london_001_front", "off"])
    turned = np.abs(face["london_001_right34", "on"].astype(int) - face["london_001_right34", "off"].astype(int))
    assert turned.mean() > 1.0
