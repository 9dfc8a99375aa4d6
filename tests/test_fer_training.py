"""FER training views (random affine crops), test-time augmentation and the validation (model-selection) mode."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nfgan.cli import main
from nfgan.data.dataset import PreparedDataset
from nfgan.fer.cv import jitter_crops, predict
from nfgan.fer.model import FERNet
from nfgan.data.photometric import center_crop, five_crops



TOOLS = Path(__file__).resolve().parents[1] / "tools"


def _results_table_tool():
    """tools/fer_results_table.py as a module (tools/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fer_results_table", TOOLS / "fer_results_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _seeded_run(d: Path, seed: int, accs: list[float], complete: bool = True, folds_total: int | None = None) -> Path:
    """A minimal finished-run folder for the results-table tool: summary.json with these fold accuracies and a
    config.yaml with this seed."""
    d.mkdir()
    (d / "summary.json").write_text(json.dumps({
        "fold_accuracy": {str(k): a for k, a in enumerate(accs)}, "mean_accuracy": float(np.mean(accs)),
        "complete": complete, "folds_done": len(accs), "folds_total": folds_total or len(accs)}))
    (d / "config.yaml").write_text(f"seed: {seed}\nepochs: 25\n")
    return d


def test_jitter_without_jitter_is_the_centre_crop_or_its_mirror():
    faces = torch.from_numpy(np.random.default_rng(0).normal(size=(16, 1, 64, 64)).astype(np.float32))
    views = jitter_crops(faces, 60, rotate=0.0, scale=0.0, shift=0.0, generator=torch.Generator().manual_seed(1))
    centre = torch.from_numpy(center_crop(faces.numpy(), 60))
    same = (views - centre).abs().amax(dim=(1, 2, 3)) < 1e-4
    mirrored = (views - centre.flip(-1)).abs().amax(dim=(1, 2, 3)) < 1e-4
    assert bool((same | mirrored).all())
    assert 0 < int(same.sum()) < 16          # both orientations occur


def test_jitter_shift_moves_the_window_by_whole_pixels():
    # a horizontal ramp: shifting the window by d pixels adds d to every value (away from the border)
    ramp = torch.arange(64, dtype=torch.float32).expand(64, 64).clone()
    faces = ramp.expand(200, 1, 64, 64).contiguous()
    views = jitter_crops(faces, 60, rotate=0.0, scale=0.0, shift=2.0, generator=torch.Generator().manual_seed(3))
    centre = center_crop(ramp.numpy(), 60)
    inner = views[..., 10:50, 10:50]
    # left-right mirrored views of a ramp reverse it; undo that before measuring the offset
    slope = inner[..., 0, 1] - inner[..., 0, 0]
    unflipped = torch.where(slope.view(-1, 1, 1, 1) > 0, inner, inner.flip(-1))
    offset = (unflipped - torch.from_numpy(centre[10:50, 10:50])).mean(dim=(1, 2, 3))
    assert float(offset.abs().max()) <= 2.0 + 1e-4
    assert float(offset.std()) > 0.5          # the shifts really vary


def test_jitter_rotation_keeps_the_centre_and_is_reproducible():
    img = torch.zeros(1, 1, 64, 64)
    img[..., 28:36, 8:56] = 1.0               # a horizontal bar through the centre
    a = jitter_crops(img.expand(8, 1, 64, 64), 60, rotate=30.0, scale=0.0, shift=0.0,
                     generator=torch.Generator().manual_seed(5))
    b = jitter_crops(img.expand(8, 1, 64, 64), 60, rotate=30.0, scale=0.0, shift=0.0,
                     generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert bool((a[..., 29:31, 29:31] > 0.9).all())        # the centre stays on the bar
    rows = (a > 0.5).float().sum(dim=-1)                   # a rotated bar spans more rows than 8
    assert int(((rows > 0).sum(dim=-1)).max()) > 12


def test_tta_prediction_is_the_mean_softmax_over_the_ten_crops():
    torch.manual_seed(0)
    net = FERNet(5).eval()
    faces = np.random.default_rng(1).normal(size=(7, 64, 64)).astype(np.float32)
    got = predict(net, faces, 60, tta=True)
    with torch.no_grad():
        views = torch.from_numpy(np.stack([five_crops(f, 60) for f in faces]).astype(np.float32))
        probs = net(views.reshape(-1, 1, 60, 60))[0].softmax(1).reshape(7, 10, 5).mean(1)
    np.testing.assert_array_equal(got, probs.argmax(1).numpy())
    plain = predict(net, faces, 60)
    with torch.no_grad():
        ref = net(torch.from_numpy(center_crop(faces, 60)).unsqueeze(1))[0].argmax(1).numpy()
    np.testing.assert_array_equal(plain, ref)


def test_validate_mode_scores_held_out_training_subjects_only(tiny, tmp_path):  # noqa: F811
    data, folds = tiny
    out = tmp_path / "val"
    cfg = tmp_path / "jitter.yaml"
    cfg.write_text("rotate: 8\nscale: 0.05\nshift: 2\ntta: true\nval_fraction: 0.25\nthreads: 1\n")
    assert main(["fer", "cv", "--data", str(data), "--folds", str(folds), "--config", str(cfg), "--variant", "2b",
                 "--out", str(out), "--only-fold", "0", "2", "--epochs", "1", "--validate"]) == 0
    fold_file = json.loads(folds.read_text())["folds"]
    subject_of = {r["id"]: r["subject"] for r in PreparedDataset(data).records}
    for k in (0, 2):
        res = json.loads((out / "folds" / f"fold_{k:02d}.json").read_text())
        test_subjects = set(fold_file[k]["test_subjects"])
        assert res["split"] == "val"
        assert res["test_subjects"] and not set(res["test_subjects"]) & test_subjects
        scored = {subject_of[p["id"]] for p in res["predictions"]}
        assert scored == set(res["test_subjects"])            # only validation subjects were scored
        # 6 subjects: 2 in the test fold, 1 (= 25 % of 4) for validation, 3 x 6 faces for training
        assert res["n_train"] == 18 and res["n_test"] == 6
    assert not (out / "folds" / "fold_01.json").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["split"] == "val" and summary["folds_done"] == 2


def test_seed_override_and_results_table(tiny, tmp_path, capsys):  # noqa: F811
    import yaml

    data, folds = tiny
    runs = []
    for seed in (0, 3):
        out = tmp_path / f"seed{seed}"
        assert main(["fer", "cv", "--data", str(data), "--folds", str(folds), "--variant", "softmax", "--out",
                     str(out), "--only-fold", "1", "--epochs", "1", "--threads", "1", "--seed", str(seed)]) == 0
        assert yaml.safe_load((out / "config.yaml").read_text())["seed"] == seed
        runs.append(out)
    h0, h3 = (json.loads((r / "folds" / "fold_01.json").read_text())["history"][0]["ce"] for r in runs)
    assert h0 != h3                                   # a different seed really trains differently
    mod = _results_table_tool()
    capsys.readouterr()
    assert mod.main([str(r) for r in runs]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 4 and rows[0].startswith("| run | split | folds |")
    s0 = json.loads((runs[0] / "summary.json").read_text())
    assert f"| test | 1/3 | {100 * s0['mean_accuracy']:.2f} |" in rows[2]
    assert mod.main([str(tmp_path / "missing")]) == 1


def test_results_table_paired_comparison_by_hand(tmp_path, capsys):
    """--paired: differences on the folds both runs finished, counts, sd and the exact Wilcoxon p."""

    mod = _results_table_tool()
    base = {"0": 0.90, "1": 0.95, "2": 1.00, "3": 0.80}
    other = {"0": 0.92, "1": 0.95, "2": 0.97, "3": 0.85, "4": 0.50}       # fold 4 unfinished in base
    cells = mod.paired_row(base, other, Path("b"), Path("a"))
    # differences +2, 0, -3, +5 points; nonzero ranks 1, 2, 3 -> W- = 2, exact two-sided p = 2 * 3/8
    assert cells[2:] == ["4", "+1.00", "2 / 1 / 1", f"{np.std([2, 0, -3, 5], ddof=1):.2f}", "0.75"]
    assert mod.paired_row(base, base, Path("a"), Path("a"))[3:] == ["+0.00", "0 / 4 / 0", "0.00", "-"]
    for name, acc in (("a", base), ("b", other)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps({"fold_accuracy": acc}))
    capsys.readouterr()
    assert mod.main(["--paired", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 3 and rows[2].endswith("| 0.75 |")


def test_results_table_seed_average(tmp_path, capsys):
    """--seeds: the mean of complete runs' mean accuracies, their seeds from config.yaml; mixed folds, an
    unfinished run or a repeated seed are refused."""
    mod = _results_table_tool()

    def run(name, seed, accs, complete=True):
        return str(_seeded_run(tmp_path / name, seed, accs, complete=complete, folds_total=3))

    a = run("a", 0, [0.90, 0.95, 1.00])      # mean 95.00
    b = run("b", 1, [0.92, 0.96, 0.95])      # mean 94.33
    capsys.readouterr()
    assert mod.main(["--seeds", a, b]) == 0
    row = capsys.readouterr().out.splitlines()[2]
    assert row.endswith("| 0, 1 | 95.00, 94.33 | 94.67 |")
    for bad, why in ((run("c", 2, [0.9, 0.9]), "other folds"), (run("d", 3, [0.9, 0.9, 0.9], False), "unfinished"),
                     (run("e", 1, [0.9, 0.9, 0.9]), "same seed")):
        assert mod.main(["--seeds", a, b, bad] if why == "same seed" else ["--seeds", a, bad]) == 1
        assert why in capsys.readouterr().err


def test_results_table_seed_paired_comparison_by_hand(tmp_path, capsys):
    """--seeds ... --vs ...: runs matched by seed; per-seed and seed-averaged per-fold differences by hand."""
    mod = _results_table_tool()

    def run(name, seed, accs):
        return _seeded_run(tmp_path / name, seed, accs)

    a = [run("a0", 0, [0.90, 1.00, 0.80]), run("a1", 1, [0.95, 0.90, 0.85])]
    b = [run("b1", 1, [0.90, 0.90, 0.90]), run("b0", 0, [0.90, 0.95, 0.85])]   # other order: matched by seed
    cells = mod.seed_paired_row(a, [json.loads((r / "summary.json").read_text()) for r in a],
                                b, [json.loads((r / "summary.json").read_text()) for r in b])
    # seed 0: 90 - 90 = 0 points; seed 1: 90 - 90 = 0 ... per fold: seed 0 (0, +5, -5), seed 1 (+5, 0, -5)
    # -> averaged (+2.5, +2.5, -5): 2 better, 1 worse, Wilcoxon ranks 1.5, 1.5, 3 -> p = 1.0; baseline fold
    # means (90, 92.5, 87.5) -> sd 2.5
    assert cells == ["0: +0.00, 1: +0.00", "+0.00", "0.00", "0 / 2 / 0", "2 / 0 / 1", "1.00", "2.50"]
    capsys.readouterr()
    assert mod.main(["--seeds", *map(str, a), "--vs", *map(str, b)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 8 and out[-1].endswith("| 1.00 | 2.50 |")
    assert mod.main(["--seeds", *map(str, a), "--vs", str(b[0])]) == 1          # seed 0 has no baseline
    assert "same seeds on both sides" in capsys.readouterr().err


def test_results_table_ensemble_of_runs_by_hand(tmp_path, capsys):
    """--ensemble: each test face classified by the mean of the runs' probabilities; runs without probs refused."""
    mod = _results_table_tool()

    def run(name, probs_per_fold, with_probs=True):
        d = tmp_path / name / "folds"
        d.mkdir(parents=True)
        for k, probs in enumerate(probs_per_fold):
            preds = [{"id": f"f{k}_{i}", "true": ["x", "y"][i % 2], "pred": "x",
                      **({"probs": p} if with_probs else {})} for i, p in enumerate(probs)]
            (d / f"fold_{k:02d}.json").write_text(json.dumps({"fold": k, "predictions": preds,
                                                              "per_class_accuracy": {"x": 0, "y": 0}}))
        return tmp_path / name

    # fold 0: faces true x, y; fold 1: faces true x, y, x
    r1 = run("r1", [[[0.9, 0.1], [0.6, 0.4]], [[0.4, 0.6], [0.3, 0.7], [0.2, 0.8]]])
    r2 = run("r2", [[[0.8, 0.2], [0.1, 0.9]], [[0.7, 0.3], [0.45, 0.55], [0.6, 0.4]]])
    accs, pooled = mod.ensemble_accuracy([r1, r2])
    # means: fold 0 (.85,.15)->x ok, (.35,.65)->y ok: 1.0; fold 1 (.55,.45)->x ok, (.375,.625)->y ok,
    # (.4,.6)->y but x: 2/3
    np.testing.assert_allclose(accs, [1.0, 2 / 3])
    assert pooled == pytest.approx(4 / 5)
    capsys.readouterr()
    assert mod.main(["--ensemble", str(r1), str(r2)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("| 2 | 83.33 | 23.57 | 80.00 |")
    old = run("old", [[[0.5, 0.5], [0.5, 0.5]], [[0.5, 0.5]] * 3], with_probs=False)
    assert mod.main(["--ensemble", str(r1), str(old)]) == 1
    assert "no class probabilities" in capsys.readouterr().err
