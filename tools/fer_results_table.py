"""Print the markdown rows of docs/fer.md's result tables from finished `nfgan fer cv` run directories.

    python tools/fer_results_table.py runs/fer/ckplus_softmax runs/fer/ckplus_2b runs/fer/ckplus_2b_aug
    python tools/fer_results_table.py --per-fold runs/fer/ckplus_softmax runs/fer/ckplus_2b   # fold columns
    python tools/fer_results_table.py --paired runs/fer/ckplus_2b runs/fer/ckplus_2b_aug      # each run vs the first
    python tools/fer_results_table.py --seeds runs/fer/ckplus_2b runs/fer/ckplus_2b_seed1     # mean over seeds

``--paired``: every later run against the first one, fold by fold on the folds both finished: mean
difference (points), folds better / equal / worse, sample sd of the differences and the two-sided Wilcoxon
signed-rank p (zero differences dropped; ``-`` when every fold is equal). How docs/fer.md reads a difference.

``--seeds``: the runs are one configuration and variant trained with different seeds, all complete on the
same folds: one row with each run's seed and mean fold accuracy and the mean of those means ("over two
seeds" in docs/fer.md).

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
    args = ap.parse_args(argv)
    summaries = []
    for run in args.runs:
        path = run / "summary.json"
        if not path.is_file():
            print(f"error: {path}: not found (is {run} an `nfgan fer cv` run directory?)", file=sys.stderr)
            return 1
        summaries.append(json.loads(path.read_text()))
    if args.per_fold:
        folds = sorted({int(k) for s in summaries for k in s["fold_accuracy"]})
        print("| fold | " + " | ".join(r.name for r in args.runs) + " |")
        print("|---" * (len(args.runs) + 1) + "|")
        for k in folds:
            print(f"| {k} | " + " | ".join(_pct(s["fold_accuracy"].get(str(k))) for s in summaries) + " |")
        return 0
    if args.seeds:
        try:
            cells = seeds_row(args.runs, summaries)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print("| runs | seeds | mean acc per run (%) | mean over runs (%) |")
        print("|---" * 4 + "|")
        print("| " + " | ".join(cells) + " |")
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
    import yaml

    seeds = []
    for run, s in zip(runs, summaries):
        if not s.get("complete"):
            raise ValueError(f"{run}: unfinished ({s.get('folds_done')}/{s.get('folds_total')} folds)")
        if set(s["fold_accuracy"]) != set(summaries[0]["fold_accuracy"]):
            raise ValueError(f"{run}: other folds than {runs[0]}")
        cfg_path = run / "config.yaml"
        seeds.append(yaml.safe_load(cfg_path.read_text()).get("seed") if cfg_path.is_file() else None)
    known = [x for x in seeds if x is not None]
    if len(set(known)) != len(known):
        raise ValueError(f"two runs have the same seed ({seeds}): not a seed average")
    means = [100 * s["mean_accuracy"] for s in summaries]
    return [", ".join(f"`{r}`" for r in runs), ", ".join("?" if x is None else str(x) for x in seeds),
            ", ".join(f"{m:.2f}" for m in means), f"{sum(means) / len(means):.2f}"]


def paired_row(base: dict, other: dict, run: Path, base_run: Path) -> list[str]:
    """Markdown cells comparing two ``fold_accuracy`` maps on their common folds (accuracies as fractions)."""
    import numpy as np
    from scipy.stats import wilcoxon

    folds = sorted(set(base) & set(other), key=int)
    d = 100 * (np.array([other[k] for k in folds]) - np.array([base[k] for k in folds]))
    d = np.round(d, 9)       # the same fraction from two runs can differ in the last bit
    better, equal, worse = int((d > 0).sum()), int((d == 0).sum()), int((d < 0).sum())
    p = f"{wilcoxon(d[d != 0]).pvalue:.2f}" if better + worse else "-"
    sd = f"{d.std(ddof=1):.2f}" if len(d) > 1 else "-"
    return [f"`{run}`", f"`{base_run}`", str(len(folds)), f"{d.mean():+.2f}" if len(d) else "-",
            f"{better} / {equal} / {worse}", sd, p]


if __name__ == "__main__":
    sys.exit(main())
