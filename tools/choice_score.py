"""The normaliser choice rule of issue #23 (docs/experiments.md, round 8), from `nfgan evaluate`'s per_face.csv
files: identity and neutrality on the sets a model trained on, and on a set it never saw.

A *part* is one comparison of models on one kind of face: ``in`` (the validation people of sets the candidates
trained on: one model file per candidate) or ``unseen`` (a set left out of training: each candidate's
leave-that-set-out model, scored on the set's people outside its test split, who neither model saw and who stay
unseen for the shipped model's test numbers). Each spec names one candidate's rows:

    PART:SET:CANDIDATE=PER_FACE_CSV@MODEL_COLUMN

For every (part, set, candidate) the tool prints the inputs, gt pass faceres (the output within the set's 1 %
FAR threshold of the person's real neutral face) and face-api neutral on expressive inputs (``is_expressive``: Yale's
neutral variants with glasses or side light are not expressive); a part's score is the
input-weighted mean over its sets of (gt pass + neutral) / 2, and the rule's score is the mean of the parts'
scores. Example (round 8):

    python tools/choice_score.py \\
      in:london:control=docs/results/turned/london_val/per_face.csv@control ... \\
      unseen:ckplus:control=docs/results/lodo_ckplus_default_recipe/ckplus_every_person/per_face.csv@lodo_ckplus ...

The last line is ``choice_score CANDIDATE=SCORE ...``.

With ``--bootstrap N`` the tool also says how far each margin is from noise: it redraws each (part, set)'s people
with replacement N times (a person's faces stay together; every candidate gets the same draw, so the comparison
is paired), scores every candidate on each draw, and prints, for each candidate against the first one named,
the score difference, its 95 % percentile interval and the share of draws in which the candidate is ahead,
ending with ``bootstrap CANDIDATE=DIFF [LO, HI] AHEAD ...``.
"""
from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from nfgan.data.pairs import load_splits
from nfgan.data.schema import is_expressive

#: the split file each set's people come from (``nfgan/assets/splits``)
SPLIT_FILES = {"london": "london", "canada": "canada", "ckplus": "ckplus_with_neutral", "jaffe": "jaffe",
               "yale": "yale"}
PARTS = ("in", "unseen")


def parse_spec(spec: str) -> tuple[str, str, str, Path, str]:
    head, sep, rest = spec.partition("=")
    path, at, model = rest.rpartition("@")
    bits = head.split(":")
    if not (sep and at and len(bits) == 3 and all(bits) and path and model):
        raise SystemExit(f"error: {spec!r}: expected PART:SET:CANDIDATE=PER_FACE_CSV@MODEL_COLUMN")
    part, set_name, cand = bits
    if part not in PARTS:
        raise SystemExit(f"error: {spec!r}: part must be one of {', '.join(PARTS)}")
    if set_name not in SPLIT_FILES:
        raise SystemExit(f"error: {spec!r}: unknown set {set_name!r} (known: {', '.join(SPLIT_FILES)})")
    return part, set_name, cand, Path(path), model


def rows_of(path: Path, model: str, subjects: set[str] | None) -> list[dict]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f) if r["model"] == model]
    except FileNotFoundError:
        raise SystemExit(f"error: {path}: not found") from None
    except KeyError:
        raise SystemExit(f"error: {path}: no 'model' column (not an nfgan evaluate per_face.csv)") from None
    if not rows:
        raise SystemExit(f"error: {path}: no rows of model {model!r}")
    if subjects is not None:
        rows = [r for r in rows if r["subject"] in subjects]
    return rows


def set_stats(rows: list[dict]) -> dict:
    """Inputs, gt pass faceres and face-api neutral on expressive inputs (fractions; None where nothing counts)."""
    per_class: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if is_expressive(r["expression"]) and r.get("neutral_faceapi", "") != "":
            per_class[r["expression"]].append(float(r["neutral_faceapi"]))
    people = sorted({r["subject"] for r in rows})
    return {**rates(person_sums(rows, people).sum(axis=0)),
            "per_class": {k: (sum(v) / len(v), len(v)) for k, v in sorted(per_class.items())}}


def rates(sums: np.ndarray) -> dict:
    """`set_stats`'s inputs, gt pass and neutral from one row of `person_sums` (or a sum of rows)."""
    n, gt, gt_n, neu, neu_n = (float(v) for v in sums)
    return {"n": int(n), "gt_pass": gt / gt_n if gt_n else None, "neutral": neu / neu_n if neu_n else None}


def part_score(stats: dict[str, dict]) -> float:
    """Input-weighted mean over sets of (gt pass + neutral) / 2, in %."""
    tot = n = 0
    for st in stats.values():
        vals = [v for v in (st["gt_pass"], st["neutral"]) if v is not None]
        if vals:
            tot += st["n"] * sum(vals) / len(vals)
            n += st["n"]
    return 100 * tot / n if n else float("nan")


def person_sums(rows: list[dict], people: list[str]) -> np.ndarray:
    """Per person (in the order of ``people``): inputs, gt passes, gt checks, neutral calls on expressive inputs,
    expressive inputs with a call. Shape (len(people), 5)."""
    at = {p: i for i, p in enumerate(people)}
    out = np.zeros((len(people), 5))
    for r in rows:
        i = at[r["subject"]]
        out[i, 0] += 1
        if r.get("id_gt_pass_faceres", "") != "":
            out[i, 1] += float(r["id_gt_pass_faceres"])
            out[i, 2] += 1
        if is_expressive(r["expression"]) and r.get("neutral_faceapi", "") != "":
            out[i, 3] += float(r["neutral_faceapi"])
            out[i, 4] += 1
    return out


def bootstrap_scores(rows: dict[str, dict[str, dict[str, list[dict]]]], parts: list[str], draws: int,
                     seed: int) -> dict[str, np.ndarray]:
    """The rule's score of every candidate on ``draws`` paired redraws of the people: {candidate: (draws,)}.

    ``rows[candidate][part][set]`` are the candidate's per_face rows. Each (part, set)'s people are drawn with
    replacement, the same draw for every candidate, and each draw is scored as the rule scores the people once
    (`rates`, `part_score`)."""
    rng = np.random.default_rng(seed)
    cands = list(rows)
    drawn: dict[str, dict[str, list[np.ndarray]]] = {c: {p: [] for p in parts} for c in cands}
    for p in parts:
        for s in rows[cands[0]][p]:
            people = sorted({r["subject"] for c in cands for r in rows[c][p][s]})
            counts = rng.multinomial(len(people), np.full(len(people), 1 / len(people)), size=draws)
            for c in cands:
                drawn[c][p].append(counts @ person_sums(rows[c][p][s], people))   # (draws, 5)

    def score(c: str, d: int) -> float:
        return float(np.mean([part_score({i: rates(sums[d]) for i, sums in enumerate(drawn[c][p])})
                              for p in parts]))

    return {c: np.array([score(c, d) for d in range(draws)]) for c in cands}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("specs", nargs="+", metavar="PART:SET:CANDIDATE=PER_FACE_CSV@MODEL_COLUMN")
    ap.add_argument("--bootstrap", type=int, default=0, metavar="N",
                    help="also redraw the people N times (paired) and print each candidate's margin over the first "
                         "candidate with its 95 %% interval")
    ap.add_argument("--seed", type=int, default=0, help="seed of the --bootstrap draws (default 0)")
    args = ap.parse_args(argv)
    if args.bootstrap < 0:
        raise SystemExit("error: --bootstrap must be >= 0")
    stats: dict[str, dict[str, dict[str, dict]]] = defaultdict(lambda: defaultdict(dict))
    all_rows: dict[str, dict[str, dict[str, list[dict]]]] = defaultdict(lambda: defaultdict(dict))
    for spec in args.specs:
        part, set_name, cand, path, model = parse_spec(spec)
        splits = load_splits(SPLIT_FILES[set_name])
        subjects = set(splits["val"]) if part == "in" else set(splits["train"]) | set(splits["val"])
        rows = rows_of(path, model, subjects)
        if not rows:
            raise SystemExit(f"error: {path}: model {model!r} has no rows of {set_name}'s "
                             f"{'validation' if part == 'in' else 'train and validation'} people")
        all_rows[cand][part][set_name] = rows
        stats[cand][part][set_name] = set_stats(rows)
    cands = list(stats)
    parts = [p for p in PARTS if any(p in stats[c] for c in cands)]
    for c in cands:
        missing = [p for p in parts if p not in stats[c]]
        if missing:
            raise SystemExit(f"error: candidate {c!r} has no {', '.join(missing)} part: every candidate needs the "
                             "same parts")
        for p in parts:
            if set(stats[c][p]) != set(stats[cands[0]][p]):
                raise SystemExit(f"error: part {p!r}: candidates {cands[0]!r} and {c!r} cover different sets")
    print("| part | set | candidate | inputs | gt pass faceres % | neutral faceapi % (expressive) | per class % |")
    print("|---|---|---|---|---|---|---|")
    for p in parts:
        for s in stats[cands[0]][p]:
            for c in cands:
                st = stats[c][p][s]
                pc = ", ".join(f"{k} {100 * v:.0f} ({n})" for k, (v, n) in st["per_class"].items())
                gt = "-" if st["gt_pass"] is None else f"{100 * st['gt_pass']:.1f}"
                neu = "-" if st["neutral"] is None else f"{100 * st['neutral']:.1f}"
                print(f"| {p} | {s} | {c} | {st['n']} | {gt} | {neu} | {pc} |")
    print()
    print("| candidate | " + " | ".join(f"{p} score" for p in parts) + " | rule score |")
    print("|---|" + "---|" * (len(parts) + 1))
    final = {}
    for c in cands:
        ps = [part_score(stats[c][p]) for p in parts]
        final[c] = sum(ps) / len(ps)
        print(f"| {c} | " + " | ".join(f"{v:.1f}" for v in ps) + f" | {final[c]:.1f} |")
    print("choice_score " + " ".join(f"{c}={v:.1f}" for c, v in final.items()))
    if args.bootstrap and len(cands) > 1:
        scores = bootstrap_scores(all_rows, parts, args.bootstrap, args.seed)
        ref = cands[0]
        print()
        print(f"Paired bootstrap over people ({args.bootstrap} draws, seed {args.seed}), against {ref}:")
        print()
        print(f"| candidate | rule score | difference to {ref} | 95 % interval | draws ahead of {ref} |")
        print("|---|---|---|---|---|")
        line = []
        for c in cands[1:]:
            d = scores[c] - scores[ref]
            lo, hi = np.percentile(d, [2.5, 97.5])
            ahead = float(np.mean(d > 0))
            diff = final[c] - final[ref]
            print(f"| {c} | {final[c]:.1f} | {diff:+.1f} | [{lo:+.1f}, {hi:+.1f}] | {100 * ahead:.1f} % |")
            line.append(f"{c}={diff:+.1f}[{lo:+.1f},{hi:+.1f}]{ahead:.3f}")
        print("bootstrap " + " ".join(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
