"""Subject-independent cross-validation folds, stored as small JSON files that are committed with the project.

A fold file fixes which subjects are tested in each fold, so that every variant (softmax, 2B[N+M]Softmax,
+NFGAN augmentation) and every re-run sees the same split (paper Sec. 5: CK+ with 8 or 10 folds by subject,
JAFFE leave-one-subject-out). Format::

    {"name": "ckplus_peak_10fold", "dataset": "ckplus/peak", "k": 10, "seed": 0, "method": "...",
     "n_subjects": 118, "folds": [{"test_subjects": ["S010", ...]}, ...]}

Stratification (``make_subject_folds``): a subject-level split cannot balance classes exactly, so subjects
are dealt greedily, rarest expression first: each subject goes to the fold that currently holds the fewest
images of that subject's rarest expression (ties: fewest images overall, then a seeded random order).
This keeps rare classes (CK+ contempt: 18 sequences, fear: 25) spread over the folds.
"""
from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Sequence

from nfgan.atomic import write_text


class FoldFileError(ValueError):
    pass


def make_subject_folds(subjects: Sequence[str], labels: Sequence[str], k: int, seed: int = 0) -> list[list[str]]:
    """Split subjects (one entry per image, with that image's label) into ``k`` disjoint, stratified folds.

    Returns ``k`` sorted lists of subject ids; every subject appears in exactly one fold.
    """
    if len(subjects) != len(labels):
        raise ValueError("subjects and labels must have one entry per image")
    per_subject: dict[str, Counter] = defaultdict(Counter)
    for s, y in zip(subjects, labels):
        per_subject[s][y] += 1
    if k < 2 or k > len(per_subject):
        raise ValueError(f"k={k} folds needs 2 <= k <= number of subjects ({len(per_subject)})")
    class_total = Counter(labels)
    rng = random.Random(seed)
    order = sorted(per_subject)
    rng.shuffle(order)
    # rarest-class subjects first, so that they are spread before the folds fill up
    order.sort(key=lambda s: min(class_total[y] for y in per_subject[s]))
    fold_class = [Counter() for _ in range(k)]
    fold_size = [0] * k
    folds: list[list[str]] = [[] for _ in range(k)]
    tiebreak = list(range(k))
    for s in order:
        rare = min(per_subject[s], key=lambda y: (class_total[y], y))
        rng.shuffle(tiebreak)
        best = min(range(k), key=lambda f: (fold_class[f][rare], fold_size[f], tiebreak.index(f)))
        folds[best].append(s)
        fold_class[best].update(per_subject[s])
        fold_size[best] += sum(per_subject[s].values())
    return [sorted(f) for f in folds]


def leave_one_subject_out(subjects: Iterable[str]) -> list[list[str]]:
    """One fold per subject (JAFFE: 10 folds)."""
    return [[s] for s in sorted(set(subjects))]


def save_folds(path: str | Path, folds: list[list[str]], **meta) -> Path:
    path = Path(path)
    doc = {**meta, "k": len(folds), "n_subjects": sum(len(f) for f in folds),
           "folds": [{"test_subjects": list(f)} for f in folds]}
    write_text(path, json.dumps(doc, indent=1) + "\n")
    return path


def load_folds(path: str | Path, dataset_subjects: Iterable[str] | None = None) -> list[list[str]]:
    """Read a fold file and check it: folds are disjoint, non-empty, and (when ``dataset_subjects`` is given)
    together cover exactly the dataset's subjects. Errors name the file and the offending subjects."""
    from nfgan.weights import UnknownProtocolFile, protocol_file

    try:
        path = protocol_file(path, "folds")    # a path, or a fold file nfgan ships (ckplus_peak_10fold, ...)
        doc = json.loads(path.read_text(encoding="utf-8"))
        folds = [list(map(str, f["test_subjects"])) for f in doc["folds"]]
    except UnknownProtocolFile as e:
        raise FoldFileError(str(e)) from None
    except FileNotFoundError:
        raise FoldFileError(f"{path}: fold file not found") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise FoldFileError(f"{path}: not a fold file ({e.__class__.__name__}: {e})") from None
    check_folds(folds, dataset_subjects, where=str(path))
    return folds


def check_folds(folds: list[list[str]], dataset_subjects: Iterable[str] | None = None, where: str = "folds") -> None:
    if len(folds) < 2:
        raise FoldFileError(f"{where}: needs at least 2 folds, has {len(folds)}")
    seen: dict[str, int] = {}
    for i, fold in enumerate(folds):
        if not fold:
            raise FoldFileError(f"{where}: fold {i} has no test subjects")
        for s in fold:
            if s in seen:
                raise FoldFileError(f"{where}: subject {s!r} is in fold {seen[s]} and fold {i} (folds must be disjoint)")
            seen[s] = i
    if dataset_subjects is not None:
        have = set(dataset_subjects)
        missing = sorted(have - set(seen))
        extra = sorted(set(seen) - have)
        if missing or extra:
            raise FoldFileError(f"{where}: does not match the dataset's subjects: "
                                f"{len(missing)} not in any fold {missing[:5]}, {len(extra)} unknown {extra[:5]}")
