"""`references_as: input`: every face paired with its neutral reference (FERNet(paired=True)), in training and
at test time."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nfgan.cli import main
from nfgan.fer.augment import AugmentSource
from nfgan.fer.cv import DEFAULTS, jitter_crops, predict_proba, train_fold
from nfgan.fer.model import FERNet
from nfgan.data.photometric import five_crops

from conftest import normalised_folder as _normalised_folder


def test_paired_net_sees_the_face_and_its_difference_from_the_reference():
    torch.manual_seed(0)
    net = FERNet(3, paired=True).eval()
    x = torch.randn(5, 2, 60, 60)
    logits, emb = net(x)
    with torch.no_grad():
        f = net.trunk(x[:, :1]).flatten(1)
        r = net.trunk(x[:, 1:]).flatten(1)
        h = net.shared(torch.cat([f, f - r], 1))
    torch.testing.assert_close(logits, net.softmax_branch(h))
    torch.testing.assert_close(emb, torch.nn.functional.normalize(net.metric_branch(h), dim=1))
    other = x.clone()
    other[:, 1] = torch.randn(5, 60, 60)
    assert not torch.allclose(net(other)[0], logits)          # the reference really enters
    with pytest.raises(ValueError, match="face, reference"):
        net(x[:, :1])


def test_jitter_gives_the_face_and_its_reference_the_same_view():
    face = torch.randn(12, 1, 64, 64)
    pair = torch.cat([face, 2 * face + 1], 1)                 # reference = a known function of the face
    views = jitter_crops(pair, 60, rotate=10.0, scale=0.1, shift=3.0, generator=torch.Generator().manual_seed(0))
    assert views.shape == (12, 2, 60, 60)
    torch.testing.assert_close(views[:, 1], 2 * views[:, 0] + 1, atol=1e-4, rtol=0)


def test_tta_averages_the_ten_crops_of_face_and_reference_alike():
    torch.manual_seed(1)
    net = FERNet(4, paired=True).eval()
    pairs = np.random.default_rng(2).normal(size=(3, 2, 64, 64)).astype(np.float32)
    got = predict_proba(net, pairs, 60, tta=True)
    with torch.no_grad():
        views = torch.from_numpy(np.stack([five_crops(p, 60) for p in pairs]))   # 3 x 10 x 2 x 60 x 60
        want = net(views.reshape(-1, 2, 60, 60))[0].softmax(1).reshape(3, 10, 4).mean(1).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    centre = predict_proba(net, pairs, 60)
    np.testing.assert_allclose(centre, net(torch.from_numpy(pairs[:, :, 2:62, 2:62]))[0].softmax(1).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_a_paired_net_reads_an_expression_that_only_the_reference_reveals():
    """Class = whether the face is brighter or darker than the subject's own neutral face in one region; the
    subjects' own brightness in that region varies 3x more than that change, so without the reference the
    class is guesswork."""
    rng = np.random.default_rng(0)
    n_subj, per = 24, 8
    base = rng.normal(0, 0.3, size=(n_subj, 64, 64))
    base[:, 20:44, 20:44] += rng.uniform(-1.5, 1.5, size=(n_subj, 1, 1))
    labels = np.tile([0, 1], n_subj * per // 2)
    subjects = np.repeat(np.arange(n_subj), per)
    faces = base[subjects] + rng.normal(0, 0.1, size=(n_subj * per, 64, 64))
    faces[:, 20:44, 20:44] += np.where(labels == 1, 0.5, -0.5)[:, None, None]
    refs = base[subjects] + rng.normal(0, 0.1, size=(n_subj * per, 64, 64))
    pairs = np.stack([faces, refs], 1).astype(np.float32)
    cfg = {**DEFAULTS, "epochs": 8, "threads": 1, "tuplet_weight": 0.0}
    train, test = subjects < 18, subjects >= 18
    accs = {}
    for name, data in (("paired", pairs), ("single", pairs[:, 0])):
        net, _ = train_fold(cfg, "softmax", data[train], labels[train], subjects[train], 2, seed=0)
        accs[name] = float((predict_proba(net, data[test], 60).argmax(1) == labels[test]).mean())
    assert accs["paired"] >= 0.9 and accs["paired"] > accs["single"] + 0.2, accs


def test_reference_rows_per_image_and_per_subject(tiny, tmp_path):  # noqa: F811
    from nfgan.data.dataset import PreparedDataset

    data, _ = tiny
    ds = PreparedDataset(data)
    subjects = ds.column("subject")
    folder = AugmentSource(_normalised_folder(tmp_path / "refs", data, ["L001"])).load(ds)
    rows = folder.reference_rows(subjects, range(len(subjects)))
    assert [folder.subjects[i] for i in rows] == subjects        # each face gets its own subject's face
    folder.subjects = [s if s != subjects[0] else "other" for s in folder.subjects]
    with pytest.raises(ValueError, match=subjects[0]):
        folder.reference_rows(subjects, [0])
    folder.per_image = True                                      # a normaliser's one output per face
    np.testing.assert_array_equal(folder.reference_rows(subjects, [0]), np.arange(len(subjects)))


def test_cv_with_references_as_input(tiny, tmp_path, capsys):  # noqa: F811
    data, folds = tiny
    refs = _normalised_folder(tmp_path / "refs", data, ["L001"])
    cfg = tmp_path / "paired.yaml"
    cfg.write_text("references_as: input\nthreads: 1\n")
    out = tmp_path / "run"
    args = ["fer", "cv", "--data", str(data), "--folds", str(folds), "--config", str(cfg), "--variant", "2b_aug",
            "--augment", str(refs), "--out", str(out), "--only-fold", "0", "--epochs", "1"]
    assert main(args) == 0
    fold = json.loads((out / "folds" / "fold_00.json").read_text())
    assert fold["n_references"] == 0 and fold["n_test"] == 12    # references are inputs, not extra items
    assert "given, not computed" in fold["test_references"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("references_as: both\n")
    swap = {str(cfg): str(bad), str(out): str(tmp_path / "bad")}
    assert main([swap.get(a, a) for a in args]) == 1
    assert "references_as" in capsys.readouterr().err
