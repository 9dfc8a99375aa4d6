"""nfgan's own expression critic for the lever (nfgan.models.auxiliary.neutral_critic, loss.neutral_critics)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nfgan.models.auxiliary.neutral_critic import (CLASSES, CriticError, NeutralCritic, class_of, fit,
                                                   shipped_critic_path)
from nfgan.pixels import to_unit_batch
from nfgan.weights import MissingWeightsError


def _faces(n_people: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """64 px 'faces': a person's smooth blob and noise; happy = a bright mouth bar, surprise = a dark mouth hole
    and raised brow bars, neutral = neither."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    faces, y = [], []
    for p in range(n_people):
        base = 110 + 40 * rng.random() + 50 * np.exp(-((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / (0.05 + 0.05 * rng.random()))
        for cls in (0, 0, CLASSES.index("happy"), CLASSES.index("surprise")):
            img = base + rng.normal(0, 8, base.shape)
            dy = rng.integers(-2, 3)
            if cls == CLASSES.index("happy"):
                img[46 + dy:50 + dy, 22:42] += 70
            elif cls == CLASSES.index("surprise"):
                img[44 + dy:54 + dy, 27:37] -= 80
                img[14 + dy:17 + dy, 14:50] += 50
            faces.append(np.clip(img, 0, 255).astype(np.uint8))
            y.append(cls)
    return np.stack(faces), np.array(y)


def test_fit_learns_which_faces_are_neutral():
    x, y = _faces(24, 0)
    vx, vy = _faces(6, 1)
    critic, history = fit(x, y, vx, vy, epochs=12, batch_size=16, seed=0)
    assert len(history) == 12 and critic.info["epoch"] == min(history, key=lambda r: r["val_loss"])["epoch"]
    assert all(not p.requires_grad for p in critic.parameters()) and not critic.training
    tx, ty = _faces(10, 2)                                   # new people
    with torch.no_grad():
        p = critic(to_unit_batch(tx)).numpy()
    assert np.allclose(p.sum(1), 1, atol=1e-5) and p.shape == (len(tx), len(CLASSES))
    assert np.mean(p.argmax(1) == ty) >= 0.9, p.argmax(1)
    assert p[ty == 0, 0].mean() > 0.6 > p[ty != 0, 0].mean()
    # same data and seed: the same critic
    again, _ = fit(x, y, vx, vy, epochs=12, batch_size=16, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(critic.state_dict().values(), again.state_dict().values()))


def test_fit_refuses_labels_it_cannot_learn_from():
    x, y = _faces(3, 0)
    with pytest.raises(CriticError, match="both neutral and expressive"):
        fit(x, np.zeros_like(y), x, y, epochs=1)
    with pytest.raises(CriticError, match="validation faces"):
        fit(x, y, x[:0], y[:0], epochs=1)
    with pytest.raises(CriticError, match="one label each"):
        fit(x, y[:-1], x, y, epochs=1)


def test_labels_map_onto_the_critics_classes():
    assert class_of("neutral") == 0 and class_of("neutral_leftlight") == 0 and class_of("neutral_glasses") == 0
    assert class_of("sadness") == CLASSES.index("sadness") and class_of("contempt") == CLASSES.index("contempt")
    assert class_of("sleepy") is None and class_of("wink") is None


def test_critic_file_round_trips_and_damaged_files_name_themselves(tmp_path):
    torch.manual_seed(0)
    critic = NeutralCritic().freeze()
    path = critic.save(tmp_path / "c.safetensors", note="test")
    back = NeutralCritic.load(path)
    x = torch.rand(3, 1, 64, 64) * 2 - 1
    assert torch.equal(critic(x), back(x)) and back.info["note"] == "test" and back.labels == CLASSES

    with pytest.raises(MissingWeightsError, match="nothing.safetensors"):
        NeutralCritic.load(tmp_path / "nothing.safetensors")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CriticError, match="broken.safetensors: not a readable"):
        NeutralCritic.load(broken)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(CriticError, match="other.safetensors: not an expression critic"):
        NeutralCritic.load(other)
    wrong = tmp_path / "wrong.safetensors"
    save_file({k: v for k, v in critic.net.state_dict().items()}, str(wrong),
              metadata={"nfgan_neutral_critic": json.dumps({"classes": ["neutral", "happy"]})})
    with pytest.raises(CriticError, match="wrong.safetensors: classes"):
        NeutralCritic.load(wrong)
    small = tmp_path / "small.safetensors"
    NeutralCritic(width=8).save(small)
    meta = json.loads(__import__("safetensors").safe_open(str(small), "pt").metadata()["nfgan_neutral_critic"])
    assert meta["width"] == 8 and NeutralCritic.load(small).width == 8


def test_shipped_critic_is_described_in_its_file():
    critic = NeutralCritic.load()
    assert critic.info["licence"].startswith("non-commercial research")
    names = {s["name"] for s in critic.info["sources"]}
    assert {"london", "canada", "ckplus", "jaffe", "yale"} <= names
    assert critic.info["val_neutral_accuracy"] >= 0.85 and shipped_critic_path().stat().st_size < 2_000_000


@pytest.mark.shared_data
def test_shipped_critic_tells_london_smiles_from_neutral_faces_of_people_it_never_saw(shared_data, tmp_path):
    """London's test people (never read by tools/train_neutral_critic.py), frontal, aligned as `nfgan prepare`
    does. Measured: 21 of 22 neutral faces called neutral, 20 of 22 smiles not; the smile's p_neutral below
    the same person's neutral face's for every person."""
    from nfgan.data.adapters import load
    from nfgan.data.dataset import PreparedDataset
    from nfgan.data.pairs import load_splits
    from nfgan.data.prepare import prepare_dataset

    test_people = set(load_splits("london")["test"])
    records = [r for r in load("london", shared_data / "london") if r.subject in test_people and r.pose == "frontal"]
    prepare_dataset(records, tmp_path / "ld", workers=1, progress=False, flip=False)
    ds = PreparedDataset(tmp_path / "ld")
    critic = NeutralCritic.load()
    expr = np.array(ds.column("expression"))
    subj = np.array(ds.column("subject"))
    with torch.no_grad():
        p = critic(ds.tensor(np.arange(len(ds)))).numpy()
    neutral = expr == "neutral"
    assert neutral.sum() == len(test_people) and (~neutral).sum() == len(test_people)
    assert np.mean(p[neutral].argmax(1) == 0) >= 0.85
    assert np.mean(p[~neutral].argmax(1) != 0) >= 0.8
    by = {(s, e == "neutral"): p[k, 0] for k, (s, e) in enumerate(zip(subj, expr))}
    assert np.mean([by[(s, False)] < by[(s, True)] for s in test_people]) >= 0.9
