"""Print the markdown rows of docs/fer.md's result tables from finished `nfgan fer cv` run directories.

    python tools/fer_results_table.py runs/fer/ckplus_softmax runs/fer/ckplus_2b runs/fer/ckplus_2b_aug
    python tools/fer_results_table.py --per-fold runs/fer/ckplus_softmax runs/fer/ckplus_2b   # fold columns
    python tools/fer_results_table.py --paired runs/fer/ckplus_2b runs/fer/ckplus_2b_aug      # each run vs the first
    python tools/fer_results_table.py --seeds runs/fer/ckplus_2b runs/fer/ckplus_2b_seed1     # mean over seeds
    python tools/fer_results_table.py --seeds runs/fer/seeds/ckplus96_2b_aug_seed* --vs runs/fer/seeds/ckplus96_2b_seed*
    python tools/fer_results_table.py --ensemble runs/fer/seeds/ckplus96_2b_seed*             # mean softmax of the runs

``--paired``: every later run against the first one, fold by fold on the folds both finished: mean
difference (points), folds better / equal / worse, sample sd of the differences and the two-sided Wilcoxon
signed-rank p (zero differences dropped; ``-`` when every fold is equal). How docs/fer.md reads a difference.

``--seeds``: the runs are one configuration and variant trained with different seeds, all complete on the
same folds: one row with each run's seed and mean fold accuracy and the mean of those means ("over two
seeds" in docs/fer.md). With ``--vs RUN...`` (the same seeds of another configuration or variant) a second
table compares the two seed by seed: the difference of each seed's mean, their mean and sd over seeds, seeds
better / equal / worse, and, fold by fold, the difference averaged over the seeds (its mean equals the mean
difference) with the Wilcoxon p over those folds and the baseline's fold-to-fold sd of its seed-averaged
accuracies (the spread a difference is read against).

``--ensemble``: the runs are nets of one configuration with different seeds (each fold record keeping its test
faces' class probabilities, ``probs``): each fold's test faces are classified by the mean of the runs'
probabilities; prints the fold accuracies' mean and sd and the pooled accuracy (reads ``folds/fold_KK.json``).

Row: run, folds done, mean and sample std of the fold accuracies, pooled accuracy, pooled per-class recall,
wall minutes (sum over folds). Reads each run's ``summary.json`` (and its ``config.yaml`` for ``--seeds``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--per-fold", action="store_true", help="one row per fold, one column per run")
    ap.add_argument("--paired", action="store_true", help="each later run against the first, fold by fold")
    ap.add_argument("--seeds", action="store_true", help="one configuration, several seeds: the mean over runs")
    ap.add_argument("--vs", nargs="+", type=Path, metavar="RUN",
                    help="with --seeds: the same seeds of a baseline, compared seed by seed and fold by fold")
    ap.add_argument("--ensemble", action="store_true", help="classify with the mean probabilities of the runs")
    args = ap.parse_args(argv)
    if args.vs and not args.seeds:
        ap.error("--vs goes with --seeds")
    if args.ensemble:
        try:
            accs, pooled = ensemble_accuracy(args.runs)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print("| nets | folds | mean acc (%) | std (%) | pooled (%) |")
        print("|---" * 5 + "|")
        print(f"| {', '.join(f'`{r}`' for r in args.runs)} | {len(accs)} | {100 * accs.mean():.2f} | "
              f"{100 * accs.std(ddof=1) if len(accs) > 1 else 0.0:.2f} | {100 * pooled:.2f} |")
        return 0
    summaries = []
    for run in [*args.runs, *(args.vs or [])]:
        path = run / "summary.json"
        if not path.is_file():
            print(f"error: {path}: not found (is {run} an `nfgan fer cv` run directory?)", file=sys.stderr)
            return 1
        summaries.append(json.loads(path.read_text()))
    base_summaries = summaries[len(args.runs):]
    summaries = summaries[:len(args.runs)]
    if args.per_fold:
        folds = sorted({int(k) for s in summaries for k in s["fold_accuracy"]})
        print("| fold | " + " | ".join(r.name for r in args.runs) + " |")
        print("|---" * (len(args.runs) + 1) + "|")
        for k in folds:
            print(f"| {k} | " + " | ".join(_pct(s["fold_accuracy"].get(str(k))) for s in summaries) + " |")
        return 0
    if args.seeds:
        try:
            rows = [seeds_row(args.runs, summaries)]
            if args.vs:
                rows.append(seeds_row(args.vs, base_summaries))
                compared = seed_paired_row(args.runs, summaries, args.vs, base_summaries)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print("| runs | seeds | mean acc per run (%) | mean over runs (%) |")
        print("|---" * 4 + "|")
        for cells in rows:
            print("| " + " | ".join(cells) + " |")
        if args.vs:
            print()
            print("| difference per seed (points) | mean over seeds | sd over seeds | seeds better / equal / worse "
                  "| folds better / equal / worse (seed-averaged) | Wilcoxon p over folds | baseline fold sd |")
            print("|---" * 7 + "|")
            print("| " + " | ".join(compared) + " |")
        return 0
    if args.paired:
        print("| run | vs | folds | difference (points) | better / equal / worse | sd of differences | Wilcoxon p |")
        print("|---" * 7 + "|")
        for run, s in zip(args.runs[1:], summaries[1:]):
            print("| " + " | ".join(paired_row(summaries[0]["fold_accuracy"], s["fold_accuracy"], run, args.runs[0]))
                  + " |")
        return 0
    classes = summaries[0]["classes"]
    print("| run | split | folds | mean acc (%) | std (%) | pooled (%) | " + " | ".join(classes) + " | wall min |")
    print("|---" * (len(classes) + 7) + "|")
    for run, s in zip(args.runs, summaries):
        per = [_pct(s["per_class_accuracy"].get(c)) for c in classes]
        print(f"| `{run}` | {s.get('split', 'test')} | {s['folds_done']}/{s['folds_total']} | "
              f"{100 * s['mean_accuracy']:.2f} | {100 * s['std_accuracy']:.2f} | {100 * s['pooled_accuracy']:.2f} | "
              + " | ".join(per) + f" | {s['minutes']:.1f} |")
    return 0


def seeds_row(runs: list[Path], summaries: list[dict]) -> list[str]:
    """Markdown cells for runs of one configuration with different seeds: their seeds (from each run's
    ``config.yaml``), each run's mean fold accuracy and the mean of those. Raises ``ValueError`` when a run is
    unfinished, the runs cover different folds, or two runs share a seed."""
    seeds = []
    for run, s in zip(runs, summaries):
        if not s.get("complete"):
            raise ValueError(f"{run}: unfinished ({s.get('folds_done')}/{s.get('folds_total')} folds)")
        if set(s["fold_accuracy"]) != set(summaries[0]["fold_accuracy"]):
            raise ValueError(f"{run}: other folds than {runs[0]}")
        seeds.append(_seed(run))
    known = [x for x in seeds if x is not None]
    if len(set(known)) != len(known):
        raise ValueError(f"two runs have the same seed ({seeds}): not a seed average")
    means = [100 * s["mean_accuracy"] for s in summaries]
    return [", ".join(f"`{r}`" for r in runs), ", ".join("?" if x is None else str(x) for x in seeds),
            ", ".join(f"{m:.2f}" for m in means), f"{sum(means) / len(means):.2f}"]


def _seed(run: Path):
    """The seed in a run's ``config.yaml`` (``None`` without one)."""
    import yaml

    cfg_path = run / "config.yaml"
    return yaml.safe_load(cfg_path.read_text()).get("seed") if cfg_path.is_file() else None


def seed_paired_row(runs: list[Path], summaries: list[dict], base_runs: list[Path], base: list[dict]) -> list[str]:
    """Markdown cells comparing runs with baseline runs of the same seeds (matched by each run's seed) on the
    same folds: per-seed differences of the mean accuracies, their mean and sd, seeds better / equal / worse,
    and the per-fold differences averaged over the seeds with their Wilcoxon p and the baseline's fold sd."""
    import numpy as np

    mine = {_seed(r): s for r, s in zip(runs, summaries)}
    theirs = {_seed(r): s for r, s in zip(base_runs, base)}
    if None in mine or None in theirs or set(mine) != set(theirs) or len(mine) != len(runs) \
            or len(theirs) != len(base_runs):
        raise ValueError(f"--vs needs the same seeds on both sides, each once (got {sorted(map(str, mine))} "
                         f"and {sorted(map(str, theirs))})")
    seeds = sorted(mine)
    folds = sorted(theirs[seeds[0]]["fold_accuracy"], key=int)
    for s in seeds:
        for side in (mine[s], theirs[s]):
            if sorted(side["fold_accuracy"], key=int) != folds:
                raise ValueError(f"seed {s}: the runs cover other folds than the first baseline run")
    per_seed = np.round([100 * (mine[s]["mean_accuracy"] - theirs[s]["mean_accuracy"]) for s in seeds], 9)
    fold_diff = np.round([np.mean([100 * (mine[s]["fold_accuracy"][k] - theirs[s]["fold_accuracy"][k])
                                   for s in seeds]) for k in folds], 9)
    base_folds = [np.mean([100 * theirs[s]["fold_accuracy"][k] for s in seeds]) for k in folds]
    return [", ".join(f"{s}: {d:+.2f}" for s, d in zip(seeds, per_seed)), f"{per_seed.mean():+.2f}",
            f"{per_seed.std(ddof=1):.2f}" if len(seeds) > 1 else "-", _counts(per_seed), _counts(fold_diff),
            _wilcoxon_p(fold_diff), f"{np.std(base_folds, ddof=1):.2f}" if len(folds) > 1 else "-"]


def ensemble_accuracy(runs: list[Path]):
    """Per-fold accuracies (array) and the pooled accuracy of classifying each fold's test faces by the mean of
    the runs' class probabilities. Raises ``ValueError`` when a fold record lacks ``probs``, the runs cover
    different folds, or a fold's test faces differ between runs."""
    import numpy as np

    records = []
    for run in runs:
        recs = {p.name: json.loads(p.read_text()) for p in sorted((run / "folds").glob("fold_*.json"))}
        if not recs:
            raise ValueError(f"{run}: no finished folds")
        records.append(recs)
    folds = sorted(records[0])
    for run, recs in zip(runs, records):
        if sorted(recs) != folds:
            raise ValueError(f"{run}: other folds than {runs[0]}")
    accs, right, total = [], 0, 0
    for name in folds:
        preds = [recs[name]["predictions"] for recs in records]
        ids = [x["id"] for x in preds[0]]
        for run, p in zip(runs, preds):
            if [x["id"] for x in p] != ids:
                raise ValueError(f"{run}/folds/{name}: other test faces than {runs[0]}")
            if any("probs" not in x for x in p):
                raise ValueError(f"{run}/folds/{name}: no class probabilities (runs before `probs` was recorded)")
        probs = np.mean([[x["probs"] for x in p] for p in preds], axis=0)
        classes = list(records[0][name]["per_class_accuracy"])
        true = np.asarray([classes.index(x["true"]) for x in preds[0]])
        hits = int((probs.argmax(1) == true).sum())
        accs.append(hits / len(true))
        right, total = right + hits, total + len(true)
    return np.asarray(accs), right / total


def paired_row(base: dict, other: dict, run: Path, base_run: Path) -> list[str]:
    """Markdown cells comparing two ``fold_accuracy`` maps on their common folds (accuracies as fractions)."""
    import numpy as np

    folds = sorted(set(base) & set(other), key=int)
    d = 100 * (np.array([other[k] for k in folds]) - np.array([base[k] for k in folds]))
    d = np.round(d, 9)       # the same fraction from two runs can differ in the last bit
    sd = f"{d.std(ddof=1):.2f}" if len(d) > 1 else "-"
    return [f"`{run}`", f"`{base_run}`", str(len(folds)), f"{d.mean():+.2f}" if len(d) else "-",
            _counts(d), sd, _wilcoxon_p(d)]


def _counts(d) -> str:
    """'better / equal / worse' for an array of differences."""
    return f"{int((d > 0).sum())} / {int((d == 0).sum())} / {int((d < 0).sum())}"


def _wilcoxon_p(d) -> str:
    """Two-sided Wilcoxon signed-rank p of the differences, zeros dropped; '-' when all are zero."""
    from scipy.stats import wilcoxon

    nonzero = d[d != 0]
    return f"{wilcoxon(nonzero).pvalue:.2f}" if len(nonzero) else "-"


if __name__ == "__main__":
    sys.exit(main())
