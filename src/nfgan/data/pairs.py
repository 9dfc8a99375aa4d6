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


def source_spec(spec: str) -> tuple[str, str, dict[str, list[str]]]:
    """``NAME=FOLDER:SPLITS`` (a tool's command-line source: a prepared folder and its split file or shipped split
    name) -> ``(name, folder, splits)``; a malformed spec is a ``SplitError`` naming it."""
    name, _, rest = str(spec).partition("=")
    folder, _, splits = rest.rpartition(":")
    if not (name and folder and splits):
        raise SplitError(f"{spec!r}: expected NAME=FOLDER:SPLITS")
    return name, folder, load_splits(splits)


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
    """Index bookkeeping for one split of a prepared dataset (indices are dataset rows).

    Targets are stored once per *target group* (a subject's frontal neutral faces, or its neutral faces in one
    pose), not once per input: ``group_rows[group_start[g]:group_start[g] + group_size[g]]`` are group g's
    rows and ``input_group[i]`` is input i's group, so a million inputs cost a few int arrays."""

    inputs: np.ndarray                     # rows usable as x
    input_group: np.ndarray                # per input: its target group
    group_start: np.ndarray                # per group: where its rows start in group_rows
    group_size: np.ndarray                 # per group: how many target rows it has (>= 1)
    group_rows: np.ndarray                 # the groups' target rows, one group after the other
    guides: np.ndarray                     # rows of the guiding set g
    subjects: list[str]                    # subjects that contribute pairs
    missing_targets: list[str] = field(default_factory=list)  # subjects without a frontal neutral face

    @classmethod
    def from_groups(cls, inputs, input_group, groups: Sequence[np.ndarray], guides, subjects, missing=()):
        size = np.asarray([len(g) for g in groups], dtype=np.int64)
        start = np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64) if len(size) else np.zeros(0, np.int64)
        rows = np.concatenate(groups).astype(np.int64) if len(groups) else np.zeros(0, np.int64)
        return cls(np.asarray(inputs, dtype=np.int64), np.asarray(input_group, dtype=np.int64), start, size, rows,
                   np.asarray(guides, dtype=np.int64), list(subjects), list(missing))

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def target_choices(self) -> list[np.ndarray]:
        """Per input: its target rows (a list of arrays; for inspection - sampling uses the groups)."""
        return [self.group_rows[self.group_start[g]:self.group_start[g] + self.group_size[g]]
                for g in self.input_group.tolist()]

    def used_targets(self) -> np.ndarray:
        """Every target row some input may be paired with (sorted, unique)."""
        used = np.unique(self.input_group)
        if not len(used):
            return np.zeros(0, np.int64)
        return np.unique(np.concatenate([self.group_rows[self.group_start[g]:self.group_start[g] + self.group_size[g]]
                                         for g in used.tolist()]))

    def first_targets(self) -> np.ndarray:
        """A deterministic target per input (its subject's first frontal neutral face): for evaluation."""
        return self.group_rows[self.group_start[self.input_group]] if len(self) else np.zeros(0, np.int64)

    def map_rows(self, fn) -> None:
        """Apply a row -> row mapping (vectorised: array in, array out) to the inputs."""
        self.inputs = np.asarray(fn(self.inputs), dtype=np.int64)

    def map_targets(self, fn) -> None:
        """Apply a row -> row mapping (vectorised) to every target row."""
        self.group_rows = np.asarray(fn(self.group_rows), dtype=np.int64)

    def pick_targets(self, picked_inputs: np.ndarray, u: np.ndarray) -> np.ndarray:
        """The target of each picked input position, chosen by ``u`` in [0, 1) among its group's rows."""
        g = self.input_group[picked_inputs]
        size = self.group_size[g]
        k = np.minimum((u * size).astype(np.int64), size - 1)
        return self.group_rows[self.group_start[g] + k]

    def sample(self, batch_size: int, generator: torch.Generator,
               weights: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Random (input rows, target rows): inputs with replacement (uniformly, or by ``weights``, one per
        input), each target uniformly among its group's rows. All randomness comes from ``generator``."""
        if weights is None:
            pick = torch.randint(len(self.inputs), (batch_size,), generator=generator).numpy()
        else:
            pick = torch.multinomial(weights, batch_size, replacement=True, generator=generator).numpy()
        u = torch.rand(batch_size, generator=generator, dtype=torch.float64).numpy()
        return self.inputs[pick], self.pick_targets(pick, u)

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
        mirrored_groups = np.unique(self.input_group[extra])
        new_id = {int(g): len(self.group_size) + k for k, g in enumerate(mirrored_groups.tolist())}
        starts = len(self.group_rows) + np.concatenate([[0], np.cumsum(self.group_size[mirrored_groups])[:-1]]) \
            if len(mirrored_groups) else np.zeros(0, np.int64)
        rows = [self.group_rows[self.group_start[g]:self.group_start[g] + self.group_size[g]] + offset
                for g in mirrored_groups.tolist()]
        return TrainingPairs(
            np.concatenate([self.inputs, self.inputs[extra] + offset]),
            np.concatenate([self.input_group, np.asarray([new_id[int(g)] for g in self.input_group[extra]],
                                                         dtype=np.int64)]),
            np.concatenate([self.group_start, np.asarray(starts, dtype=np.int64)]),
            np.concatenate([self.group_size, self.group_size[mirrored_groups]]),
            np.concatenate([self.group_rows, *rows]) if rows else self.group_rows.copy(),
            np.concatenate([self.guides, self.guides + offset]), self.subjects, self.missing_targets)

    @staticmethod
    def concatenate(parts: Sequence["TrainingPairs"], offsets: Sequence[int]) -> "TrainingPairs":
        """Pairs of several datasets in one row space: part k's rows are shifted by ``offsets[k]``."""
        g0, r0 = 0, 0
        cols: dict[str, list] = {k: [] for k in ("inputs", "input_group", "group_start", "group_size",
                                                  "group_rows", "guides")}
        subjects, missing = [], []
        for p, off in zip(parts, offsets):
            cols["inputs"].append(p.inputs + off)
            cols["input_group"].append(p.input_group + g0)
            cols["group_start"].append(p.group_start + r0)
            cols["group_size"].append(p.group_size)
            cols["group_rows"].append(p.group_rows + off)
            cols["guides"].append(p.guides + off)
            g0 += len(p.group_size)
            r0 += len(p.group_rows)
            subjects += p.subjects
            missing += p.missing_targets
        cat = {k: (np.concatenate(v).astype(np.int64) if v else np.zeros(0, np.int64)) for k, v in cols.items()}
        return TrainingPairs(subjects=subjects, missing_targets=missing, **cat)


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
    poses = ds.column("pose")
    same_pose: dict[tuple[str, str], list[int]] = {}
    if turned_targets == "same_pose":
        subject_of = ds.column("subject")
        for i in ds.indices(subjects, expression=target_expression).tolist():
            same_pose.setdefault((subject_of[i], poses[i]), []).append(int(i))
    groups: list[np.ndarray] = []
    group_of: dict = {}

    def group(key, rows) -> int:
        if key not in group_of:
            group_of[key] = len(groups)
            groups.append(np.asarray(sorted(rows), dtype=np.int64))
        return group_of[key]

    inputs, input_group, used = [], [], []
    for s in sorted(inputs_by_subject):
        if s not in targets:
            continue
        for i in inputs_by_subject[s]:
            pose = poses[i]
            if turned_targets == "same_pose" and pose != target_pose:
                if (s, pose) not in same_pose:
                    missing.append(f"{s} ({pose})")
                    continue
                inputs.append(i)
                input_group.append(group((s, pose), same_pose[s, pose]))
                continue
            inputs.append(i)
            input_group.append(group(s, targets[s]))
        used.append(s)
    missing = sorted(set(missing))
    guides = np.asarray(sorted(i for s in used for i in targets[s]), dtype=np.int64)
    return TrainingPairs.from_groups(inputs, input_group, groups, guides, used, missing)


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

