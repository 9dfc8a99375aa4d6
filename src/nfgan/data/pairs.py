"""Training pairs (x, y), the guiding set g, and subject-level splits (paper Sec. 4 and 5.2).

* Input x: any prepared face of a training subject whose pose is in ``input_poses`` (default: all poses) and
  expression in ``input_expressions`` (default: all).
* Target y: a frontal neutral face of the same subject, drawn at random when there are several. A frontal
  neutral input is kept and may be paired with itself: the network must then learn the identity mapping for
  faces that are already normalised, which is what we want at inference time.
* With ``turned_targets="same_pose"`` a 3/4 or profile input's target is instead the same subject's
  neutral face in the *same* pose (for a normaliser whose turned inputs are frontalised first: the trainer
  frontalises such targets too, so the generator only learns to remove the expression, not to guess the
  person's frontal geometry). Frontal inputs keep frontal targets.
* Guiding set g: all frontal neutral faces of the training subjects (the Dis's "real" examples, Sec. 4.3).
* Subjects without any frontal neutral face cannot be trained on; they are not dropped silently but listed in
  ``TrainingPairs.missing_targets`` (the trainer warns and writes them to the run folder).

Splits are by subject, fixed in a JSON file (a split file, ``nfgan/assets/splits/*.json`` for the shipped ones: ``{"train": [...], "val": [...],
"test": [...]}``) so every run and every evaluation uses the same held-out people; ``check_splits`` refuses
a file where a subject appears in two splits.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from nfgan.atomic import write_text
from nfgan.data.dataset import PreparedDataset

SPLIT_NAMES = ("train", "val", "test")


class SplitError(ValueError):
    pass


def make_splits(subjects: Iterable[str], counts: Sequence[int] | None = None,
                fractions: Sequence[float] = (0.7, 0.1, 0.2), seed: int = 0) -> dict[str, list[str]]:
    """Seeded shuffle of the subjects into train/val/test. ``counts`` (e.g. 70/10/22) overrides ``fractions``;
    the test split takes the remainder."""
    subs = sorted(set(subjects))
    random.Random(seed).shuffle(subs)
    n = len(subs)
    if counts is None:
        n_train = int(round(fractions[0] * n))
        n_val = int(round(fractions[1] * n))
    else:
        n_train, n_val = int(counts[0]), int(counts[1])
        if len(counts) > 2 and n_train + n_val + int(counts[2]) != n:
            raise SplitError(f"split counts {list(counts)} do not add up to {n} subjects")
    if n_train + n_val > n:
        raise SplitError(f"cannot take {n_train}+{n_val} subjects from {n}")
    return {"train": sorted(subs[:n_train]), "val": sorted(subs[n_train:n_train + n_val]),
            "test": sorted(subs[n_train + n_val:])}


def check_splits(splits: dict, source: str = "splits") -> dict[str, list[str]]:
    """Validate a split dict: the three names present, no subject in two splits. Returns it normalised."""
    missing = [k for k in SPLIT_NAMES if k not in splits]
    if missing:
        raise SplitError(f"{source}: missing split(s) {missing}")
    out = {k: [str(s) for s in splits[k]] for k in SPLIT_NAMES}
    seen: dict[str, str] = {}
    for k in SPLIT_NAMES:
        for s in out[k]:
            if s in seen:
                raise SplitError(f"{source}: subject {s!r} is in both {seen[s]!r} and {k!r}")
            seen[s] = k
    return out


def load_splits(path: str | Path) -> dict[str, list[str]]:
    """A split file, or the name of one nfgan ships (``london``: ``nfgan/assets/splits/london.json``)."""
    from nfgan.weights import UnknownProtocolFile, protocol_file

    try:
        path = protocol_file(path, "splits")
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnknownProtocolFile as e:
        raise SplitError(str(e)) from None
    except FileNotFoundError:
        raise SplitError(f"{path}: split file not found") from None
    except json.JSONDecodeError as e:
        raise SplitError(f"{path}: not valid JSON ({e})") from None
    return check_splits(data, str(path))


def save_splits(path: str | Path, splits: dict, **info) -> None:
    splits = check_splits(splits)
    write_text(path, json.dumps({**info, **splits}, indent=1) + "\n")


@dataclass
class TrainingPairs:
    """Index bookkeeping for one split of a prepared dataset (indices are dataset rows)."""

    inputs: np.ndarray                     # rows usable as x
    target_choices: list[np.ndarray]       # per input: rows of the subject's frontal neutral faces
    guides: np.ndarray                     # rows of the guiding set g
    subjects: list[str]                    # subjects that contribute pairs
    missing_targets: list[str] = field(default_factory=list)  # subjects without a frontal neutral face

    def __len__(self) -> int:
        return len(self.inputs)

    def first_targets(self) -> np.ndarray:
        """A deterministic target per input (its subject's first frontal neutral face): for evaluation."""
        return np.asarray([c[0] for c in self.target_choices], dtype=np.int64)

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Random (input rows, target rows): inputs uniformly with replacement, each target uniformly among
        its subject's frontal neutral faces. All randomness comes from ``generator`` (resumable)."""
        pick = torch.randint(len(self.inputs), (batch_size,), generator=generator).numpy()
        u = torch.rand(batch_size, generator=generator, dtype=torch.float64).numpy()
        targets = np.empty(batch_size, dtype=np.int64)
        for j, i in enumerate(pick):
            choices = self.target_choices[i]
            targets[j] = choices[min(int(u[j] * len(choices)), len(choices) - 1)]
        return self.inputs[pick], targets

    def sample_guides(self, batch_size: int, generator: torch.Generator) -> np.ndarray:
        pick = torch.randint(len(self.guides), (batch_size,), generator=generator).numpy()
        return self.guides[pick]

    def with_mirrors(self, keep: np.ndarray, offset: int) -> "TrainingPairs":
        """These pairs plus the mirror image of every pair whose input is selected by the boolean ``keep``:
        input row ``i + offset`` with targets ``t + offset`` (the caller stores the mirror of row r at
        r + offset). The guiding set gains the mirrored guides. A mirrored frontal face is a plausible
        frontal face of a new-looking person, so this doubles the identities the generator sees; a turned
        input must not be mirrored this way (its hidden side would swap, unlike every inference input)."""
        keep = np.asarray(keep, dtype=bool)
        extra = np.flatnonzero(keep)
        return TrainingPairs(np.concatenate([self.inputs, self.inputs[extra] + offset]),
                             self.target_choices + [self.target_choices[j] + offset for j in extra],
                             np.concatenate([self.guides, self.guides + offset]), self.subjects,
                             self.missing_targets)


def build_pairs(ds: PreparedDataset, subjects: Iterable[str], input_poses: Sequence[str] | None = None,
                input_expressions: Sequence[str] | None = None, target_pose: str = "frontal",
                target_expression: str = "neutral", turned_targets: str = "frontal") -> TrainingPairs:
    """Pairs for the given subjects of ``ds`` (see the module docstring for the rules). A turned input
    without a same-pose target (``turned_targets="same_pose"``) gets no pair; its subject is listed in
    ``missing_targets`` as ``"subject (pose)"``."""
    if turned_targets not in ("frontal", "same_pose"):
        raise SplitError(f"turned_targets must be 'frontal' or 'same_pose', got {turned_targets!r}")
    subjects = sorted(set(subjects))
    known = set(ds.subjects())
    unknown = [s for s in subjects if s not in known]
    if len(unknown) == len(subjects) and subjects:
        raise SplitError(f"{ds.root}: none of the {len(subjects)} split subjects is in this dataset "
                         f"(e.g. {unknown[:3]}; dataset has e.g. {sorted(known)[:3]}) - wrong split file?")
    targets = ds.by_subject(ds.indices(subjects, pose=target_pose, expression=target_expression))
    equals = {}
    if input_poses:
        equals["pose"] = list(input_poses)
    if input_expressions:
        equals["expression"] = list(input_expressions)
    inputs_by_subject = ds.by_subject(ds.indices(subjects, **equals))
    missing = sorted(s for s in subjects if s in known and s not in targets)
    same_pose: dict[tuple[str, str], list[int]] = {}
    if turned_targets == "same_pose":
        poses = ds.column("pose")
        for i in ds.indices(subjects, expression=target_expression):
            same_pose.setdefault((ds.records[i]["subject"], poses[i]), []).append(int(i))
    inputs, choices, used = [], [], []
    for s in sorted(inputs_by_subject):
        if s not in targets:
            continue
        t = np.asarray(sorted(targets[s]), dtype=np.int64)
        for i in inputs_by_subject[s]:
            pose = ds.records[i]["pose"]
            if turned_targets == "same_pose" and pose != target_pose:
                if (s, pose) not in same_pose:
                    missing.append(f"{s} ({pose})")
                    continue
                inputs.append(i)
                choices.append(np.asarray(sorted(same_pose[s, pose]), dtype=np.int64))
                continue
            inputs.append(i)
            choices.append(t)
        used.append(s)
    missing = sorted(set(missing))
    guides = np.asarray(sorted(i for s in used for i in targets[s]), dtype=np.int64)
    return TrainingPairs(np.asarray(inputs, dtype=np.int64), choices, guides, used, missing)


# ----------------------------------------------------------------------------------------------- CLI
def add_arguments(p) -> None:
    p.add_argument("data", type=Path, help="a prepared folder (nfgan prepare)")
    p.add_argument("--counts", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"),
                   help="subjects per split (must add up to the subjects of DATA)")
    p.add_argument("--fractions", type=float, nargs=2, default=(0.7, 0.1), metavar=("TRAIN", "VAL"),
                   help="shares of the subjects for train and val; test takes the rest (default 0.7 0.1)")
    p.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    p.add_argument("-o", "--out", type=Path, help="split file to write (default DATA/splits.json)")
    p.add_argument("--force", action="store_true", help="replace an existing split file")


def run(args) -> int:
    """``nfgan splits``: a subject-disjoint train/val/test split of a prepared folder, written as JSON."""
    import sys

    from nfgan.data.dataset import PreparedDataset, PreparedDatasetError

    out = args.out or args.data / "splits.json"
    try:
        if out.exists() and not args.force:
            raise SplitError(f"{out} exists (a split other runs may depend on); --force replaces it")
        if not all(0 <= f <= 1 for f in args.fractions) or sum(args.fractions) > 1:
            raise SplitError(f"--fractions {args.fractions}: two shares in [0, 1] adding up to at most 1")
        subjects = PreparedDataset(args.data).subjects()
        splits = make_splits(subjects, args.counts, (*args.fractions, 1 - sum(args.fractions)), args.seed)
        save_splits(out, splits, dataset=str(args.data), seed=args.seed)
    except (SplitError, PreparedDatasetError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}: " + ", ".join(f"{k} {len(v)}" for k, v in splits.items()) + " subjects")
    return 0

