"""Shared test fixtures and helpers. Tests that need ../shared/data use ``shared_data`` and skip cleanly without it.

Helpers (import them with ``from conftest import ...``): ``make_prepared`` writes a tiny prepared dataset of
generated faces whose output depends on the subject, pose and expression; ``tiny_nets`` are small frozen random
conv nets standing in for the auxiliary networks (so training tests do not depend on dlib weights);
``tiny_config`` / ``p2p_config`` are NFGAN / pix2pix configs for that set; the ``tiny`` fixture is a small
pre-cropped FER set with its 3-fold file.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nfgan.cli import main
from nfgan.data.dataset import PreparedDataset, write_pack
from nfgan.data.pairs import make_splits, save_splits
from nfgan.models.auxiliary.common import FeatureNet
from nfgan.training.config import load_config

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NFGAN_SHARED_DATA", REPO.parent / "shared" / "data"))

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def golden() -> dict:
    """The original TF.js models' outputs (tests/data/tfjs_golden/golden.npz, tools/tfjs/make_golden.py): every
    array of the file by name, and its ``meta`` JSON decoded; shared by the ports' tests (embedders,
    expression nets, the BlazeFace detector)."""
    with np.load(REPO / "tests" / "data" / "tfjs_golden" / "golden.npz") as z:
        data = {k: z[k] for k in z.files}
    data["meta"] = json.loads(bytes(data.pop("meta_json")).decode())
    return data


#: the Surrey Face Model folder (non-commercial; read from a path, never copied into the repository)
SFM = Path(os.environ.get("NFGAN_SFM") or REPO.parent / "shared" / "models" / "sfm")


def need_sfm() -> Path:
    """The SFM folder, or skip the test saying what is missing (eos-py, or the model's files)."""
    from nfgan.data.sfm import SFM_FILES

    try:
        import eos  # noqa: F401
    except ImportError:
        pytest.skip("eos-py is not installed (pip install 'nfgan[synth]')")
    if not all((SFM / f).is_file() for f in SFM_FILES.values()):
        pytest.skip(f"no Surrey Face Model at {SFM} (set $NFGAN_SFM)")
    return SFM


@pytest.fixture(scope="session")
def london_examples():
    """The example photos (``examples/london/``) the aligner finds a face in, as ``Generator.normalize`` takes
    them: crops, poses, mirroring flags, landmarks."""
    from nfgan.data.align import AlignError, align_face, pose_from_yaw

    rows = []
    for p in sorted((REPO / "examples" / "london").glob("*/*.jpg")):
        try:
            a = align_face(p)
        except AlignError:
            continue
        rows.append((a.crop, pose_from_yaw(a.yaw_deg), bool(a.flipped), a.landmarks68))
    assert len(rows) >= 12
    crops, poses, flipped, lms = zip(*rows)
    return np.stack(crops), list(poses), list(flipped), np.stack(lms)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the shared face data (london/, ckplus/, jaffe/, yale/); skips the test when absent."""
    if not (SHARED_DATA / "london" / "manifest.csv").is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Converted-weight cache per test session, so tests never depend on a user's ~/.cache."""
    monkeypatch.setenv("NFGAN_CACHE", str(tmp_path_factory.getbasetemp() / "nfgan-cache"))


POSES = ("frontal", "left_3quarter", "right_3quarter")
EXPRESSIONS = ("neutral", "happy")


class TinyFeatureNet(FeatureNet):
    """Two seeded random conv stages; ``vector=True`` makes the last output a pooled vector (like an
    identity embedding)."""

    name = "tiny"

    def __init__(self, seed: int = 0, vector: bool = False):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.c1 = torch.nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.c2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
        with torch.no_grad():
            for c in (self.c1, self.c2):
                c.weight.copy_(torch.randn(c.weight.shape, generator=g) * 0.3)
                c.bias.zero_()
        self.vector = vector
        self.freeze()

    def forward(self, x):
        a = torch.relu(self.c1(x))
        b = torch.relu(self.c2(a))
        return [a, b.mean(dim=(2, 3))] if self.vector else [a, b]


def tiny_nets() -> dict:
    """Small frozen random nets in place of the dlib auxiliary nets (given to the trainer from Python)."""
    return {"perceptual": TinyFeatureNet(1), "identity": TinyFeatureNet(2, vector=True)}


def make_prepared(root: Path, subjects: int = 6, size: int = 64, seed: int = 0,
                  poses=POSES, expressions=EXPRESSIONS, skip_targets: tuple[str, ...] = ()) -> Path:
    """A prepared-dataset folder of generated 'faces': each subject a smooth random pattern; pose = a
    horizontal shift, expression 'happy' = a bright bar at the mouth. Frontal neutral faces of the subjects in
    ``skip_targets`` are left out. Writes manifest.csv, faces/*.png, faces.npy and splits.json."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "faces").mkdir(exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    rows = []
    for s in range(subjects):
        sub = f"S{s:02d}"
        coarse = rng.normal(size=(6, 6))
        base = np.asarray(Image.fromarray(coarse.astype(np.float32)).resize((size, size), Image.BICUBIC))
        face = 0.5 + 0.25 * np.exp(-((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / 0.08) + 0.08 * base
        for pose in poses:
            shift = {"frontal": 0, "left_3quarter": -6, "right_3quarter": 6}.get(pose, 0)
            for expr in expressions:
                if sub in skip_targets and pose == "frontal" and expr == "neutral":
                    continue
                img = np.roll(face, shift, axis=1).copy()
                if expr == "happy":
                    img[int(0.72 * size):int(0.78 * size), int(0.35 * size):int(0.65 * size)] += 0.3
                u8 = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
                fid = f"{sub}_{pose}_{expr}"
                Image.fromarray(u8).save(root / "faces" / f"{fid}.png")
                rows.append({"id": fid, "path": f"faces/{fid}.png", "subject": sub, "expression": expr,
                             "pose": pose, "yaw_deg": "", "flipped": "0", "source_path": "", "dataset": "synthetic"})
    with open(root / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    write_pack(root)
    n = subjects
    save_splits(root / "splits.json", make_splits([f"S{s:02d}" for s in range(n)], counts=(n - 2, 1, 1), seed=0))
    return root


def tiny_config(data_root: Path, **train) -> dict:
    """An NFGAN config for the generated set; train it with ``feature_nets=tiny_nets()``."""
    return load_config(overrides={
        "data": {"root": str(data_root), "splits": str(data_root / "splits.json")},
        "train": {"steps": 4, "batch_size": 4, "bf16": False, "channels_last": False, **train},
        "log": {"every": 1, "sample_every": 2, "checkpoint_every": 2, "keep_checkpoints": 10, "sample_count": 3},
    })


def p2p_config(root, **train):
    return load_config(overrides={
        "model": {"type": "pix2pix", "ngf": 8, "ndf": 8},
        "data": {"root": str(root), "splits": str(root / "splits.json"), "flip_left_poses": False},
        "train": {"steps": 2, "batch_size": 6, "channels_last": False, **train},
        "log": {"sample_every": 2, "checkpoint_every": 2, "sample_count": 2}})


CLASSES = ("anger", "happy", "surprise")


def face(rng, cls: int, subject: int) -> np.ndarray:
    """48x48 gray 'face': subject-specific background, a class-specific bright bar, noise."""
    img = rng.normal(90 + 10 * subject, 12, size=(48, 48))
    img[8 + 12 * cls: 14 + 12 * cls, 6:42] += 110
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture()
def tiny(tmp_path):
    """A pre-cropped 48 px set (6 subjects x 3 expressions x 2 frames) imported with `nfgan fer precropped`."""
    return make_tiny_fer(tmp_path)


def make_tiny_fer(folder: Path) -> tuple[Path, Path]:
    """``tiny``'s set in ``folder``: (prepared folder, its 3-fold file)."""
    rng = np.random.default_rng(0)
    src = folder / "src"
    (src / "img").mkdir(parents=True)
    rows = []
    for s in range(6):
        for c, name in enumerate(CLASSES):
            for f in range(2):
                rel = f"img/S{s:03d}_{name}_{f}.png"
                Image.fromarray(face(rng, c, s)).save(src / rel)
                rows.append({"path": rel, "subject": f"S{s:03d}", "expression": name, "pose": "frontal"})
    with open(src / "manifest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "subject", "expression", "pose"])
        w.writeheader()
        w.writerows(rows)
    data = folder / "prepared"
    assert main(["fer", "precropped", "--manifest", str(src / "manifest.csv"), "--out", str(data)]) == 0
    folds = folder / "folds.json"
    assert main(["fer", "folds", "--data", str(data), "--k", "3", "--out", str(folds)]) == 0
    return data, folds


def normalised_folder(tmp_path, data: Path, train_subjects: list[str]) -> Path:
    """A folder of 'NFGAN outputs' for every subject of ``data`` (one face each) + recorded NFGAN subjects."""
    ds = PreparedDataset(data)
    aug = tmp_path / "nfgan_faces"
    (aug / "faces").mkdir(parents=True)
    rows = []
    for i, s in enumerate(ds.subjects()):
        Image.fromarray(np.full((64, 64), 100 + 10 * i, np.uint8)).save(aug / "faces" / f"{i}.png")
        rows.append({"id": str(i), "path": f"faces/{i}.png", "subject": s, "expression": "neutral",
                     "pose": "frontal"})
    with open(aug / "manifest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    np.save(aug / "faces.npy", np.stack([np.asarray(Image.open(aug / r["path"])) for r in rows]))
    (aug / "train_subjects.json").write_text(json.dumps(train_subjects))
    return aug


def in_time(fn, seconds: float = 5.0):
    """Run ``fn`` in a daemon thread; fail (instead of hanging the suite) when it takes longer than ``seconds``."""
    import threading

    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # handed back to the test
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still running after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def start_nfgan(argv: list[str], keep_stderr: bool = False):
    """`nfgan ARGV` as a child process in its own process group (so a kill reaches its workers too); its
    stderr is kept (a pipe: read it with ``communicate``) or dropped."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen([sys.executable, "-m", "nfgan", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE if keep_stderr else subprocess.DEVNULL, env=env,
                            start_new_session=True)


def kill_when(proc, ready, timeout: float = 120.0) -> bool:
    """SIGKILL the command's whole process group as soon as ``ready()`` is true; False if it ended first."""
    import signal
    import time

    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            return False
        if ready():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("the command neither finished nor reached the kill point in time")



def load_script(relative: str, name: str | None = None):
    """A script of the repository (``benchmarks/x.py``, ``tools/y.py``) imported as a module."""
    import importlib.util

    path = REPO / relative
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tiny_train_cli(folder: Path, steps: int, checkpoint_every: int, sample_every: int) -> list[str]:
    """``nfgan train`` arguments (without ``--name``) for a generated set in ``folder``: the tiny NFGAN config
    written to ``folder/tiny.yaml``, both feature losses off (the command line cannot take Python nets)."""
    import yaml

    root = make_prepared(folder / "data", subjects=4)
    cfg = tiny_config(root, steps=steps)
    cfg["log"].update(checkpoint_every=checkpoint_every, sample_every=sample_every)
    (folder / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    return ["train", "--config", str(folder / "tiny.yaml"), "--out", str(folder), "--set", "loss.feat=0",
            "--set", "loss.id=0", "--quiet"]


def logged_losses(run: Path) -> list[dict]:
    """A run's metrics.jsonl records without their wall-clock ``time``."""
    import json

    return [{k: v for k, v in json.loads(ln).items() if k != "time"}
            for ln in (Path(run) / "metrics.jsonl").read_text().splitlines()]
