"""Fold files: subject-disjoint, covering every subject, stratified, reproducible; bad files are refused."""
from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from nfgan.fer.folds import FoldFileError, leave_one_subject_out, load_folds, make_subject_folds, save_folds

REPO = Path(__file__).resolve().parents[1]
FOLDS = Path(__file__).resolve().parents[1] / "src" / "nfgan" / "assets" / "folds"


def _synthetic(n_subjects=40, seed=0):
    import random

    rnd = random.Random(seed)
    classes = ["a"] * 6 + ["b"] * 3 + ["rare"]
    subjects, labels = [], []
    for s in range(n_subjects):
        for _ in range(rnd.randint(1, 3)):
            y = rnd.choice(classes)
            subjects += [f"S{s:03d}"] * 3
            labels += [y] * 3
    return subjects, labels


def test_make_subject_folds_disjoint_cover_and_seeded():
    subjects, labels = _synthetic()
    folds = make_subject_folds(subjects, labels, k=5, seed=7)
    flat = [s for f in folds for s in f]
    assert len(flat) == len(set(flat)) == len(set(subjects))
    assert folds == make_subject_folds(subjects, labels, k=5, seed=7)
    assert folds != make_subject_folds(subjects, labels, k=5, seed=8)
    # the rare class is spread: no fold holds more than its fair share + one subject's worth
    rare_subjects = {s for s, y in zip(subjects, labels) if y == "rare"}
    per_fold = [len(rare_subjects & set(f)) for f in folds]
    assert max(per_fold) - min(per_fold) <= 1


def test_loso_and_bad_files(tmp_path):
    assert leave_one_subject_out(["b", "a", "b"]) == [["a"], ["b"]]
    good = save_folds(tmp_path / "ok.json", [["a", "b"], ["c"]], name="t")
    assert load_folds(good, ["a", "b", "c"]) == [["a", "b"], ["c"]]
    with pytest.raises(FoldFileError, match="not in any fold"):
        load_folds(good, ["a", "b", "c", "d"])
    overlap = save_folds(tmp_path / "overlap.json", [["a", "b"], ["b", "c"]])
    with pytest.raises(FoldFileError, match=r"overlap.json.*'b'.*disjoint"):
        load_folds(overlap)
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(FoldFileError, match="junk.json: not a fold file"):
        load_folds(tmp_path / "junk.json")


def _manifest_subjects(path: Path, prefix: str = "") -> tuple[list[str], list[str]]:
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["path"].startswith(prefix)]
    return [r["subject"] for r in rows], [r["expression"] for r in rows]


@pytest.mark.parametrize("name,manifest,prefix,k", [
    ("ckplus_peak_10fold.json", "ckplus/manifest.csv", "peak/", 10),
    ("ckplus_peak_8fold.json", "ckplus/manifest.csv", "peak/", 8),
    ("jaffe_loso.json", "jaffe/manifest.csv", "", 10),
])
def test_committed_fold_files_match_datasets(shared_data, name, manifest, prefix, k):
    subjects, labels = _manifest_subjects(shared_data / manifest, prefix)
    folds = load_folds(FOLDS / name, subjects)      # raises unless disjoint and covering
    assert len(folds) == k
    assert json.loads((FOLDS / name).read_text())["n_subjects"] == len(set(subjects))
    if name.startswith("ckplus"):
        # every class is tested in every fold and fold sizes stay within 30% of each other
        sizes = []
        for f in folds:
            test = set(f)
            counts = Counter(y for s, y in zip(subjects, labels) if s in test)
            assert set(counts) == set(labels)
            sizes.append(sum(counts.values()))
        assert max(sizes) <= 1.3 * min(sizes)
