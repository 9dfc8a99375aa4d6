"""Robustness to the photo (issue #23 item 5): normalisers scored on clean inputs and on the same inputs changed
by one fixed photometric step each (contrast, gamma, blur, sensor noise, JPEG), the targets kept clean; or framed
differently (``--conditions clean,scale=1.1,rotate=5,...``: the inputs and their landmarks moved alike, as another
aligner would frame them; ``--conditions framing`` is the list :data:`FRAMING_CONDITIONS`).

    python benchmarks/photometric_robustness.py NAME=MODEL [NAME=MODEL ...] [--split val] \
        [--sets london,canada,ckplus,jaffe,yale] [--conditions clean,blur=1.2,...] [--out DIR]

MODEL is what `nfgan evaluate` takes (run folder, checkpoint, exported file). Each condition is the same job as
`nfgan evaluate ... --degrade STEP=VALUE` (calibration on all of the set's real faces, as
benchmarks/generalisation.py does); here the models, the evaluators and the embeddings of the set's real faces
are built once per set and shared by every condition. The baseline of each number is the same model on the
clean inputs of the same run: the table prints both and the change in points.

Numbers per set, condition and model: gt pass (faceres: the output within the set's 1 % FAR threshold of the
person's clean real frontal neutral face), face-api neutral on expressive inputs, SSIM to the clean real neutral
face; the ``input`` row is the changed photo itself. canada has one photo per person: no identity threshold, so
only SSIM and neutrality there. Writes ``OUT/<set>_<split>/<condition>.csv`` (one row per input and model, as
`nfgan evaluate`'s per_face.csv), ``OUT/summary_<split>.json`` and ``OUT/summary_<split>.md``. The last line is
``photometric_robustness split=S models=... sets=... conditions=N``. ``--rescore`` (same arguments) makes the
tables again from the CSVs already in OUT, without running any model.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from generalisation import ONE_PHOTO_PER_PERSON, SETS, _pct  # noqa: E402

from nfgan.data.schema import is_expressive  # noqa: E402

#: the ends of the training ranges of data.photometric (its defaults in nfgan.training.config), then two
#: settings beyond them
CONDITIONS = ("clean", "contrast=0.6", "contrast=1.5", "gamma=0.7", "gamma=1.4", "blur=1.2", "noise=6", "jpeg=25",
              "blur=2", "jpeg=10")
#: re-framings (``nfgan.data.framing_jitter.REFRAMING_STEPS``): the face 10 % smaller and larger in the crop, turned
#: 5 degrees either way, moved 5 % of the side each way, then 20 % smaller and larger
FRAMING_CONDITIONS = ("clean", "scale=0.9", "scale=1.1", "rotate=-5", "rotate=5", "shift_x=-0.05", "shift_x=0.05",
                      "shift_y=-0.05", "shift_y=0.05", "scale=0.8", "scale=1.2")


def score(per: dict[str, np.ndarray], expressions: np.ndarray) -> dict[str, float | None]:
    expressive = np.array([is_expressive(e) for e in expressions], bool)
    return {"gt_pass": float(per["id_gt_pass_faceres"].mean()) if "id_gt_pass_faceres" in per else None,
            "neutral_expressive": float(per["neutral_faceapi"][expressive].mean()) if expressive.any() else None,
            "neutral_all": float(per["neutral_faceapi"].mean()),
            "ssim": float(per["ssim"].mean()), "n": int(len(per["ssim"])), "n_expressive": int(expressive.sum())}


def read_per_face(path: Path) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray]:
    """A per-condition CSV written by :func:`run_set` back as ``({model: {column: values}}, expressions)``; a
    column a model has no value in is left out of its dict, as it was before writing."""
    import csv

    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"error: {path}: no rows")
    metrics = [c for c in rows[0] if c not in ("model", "input_id", "subject", "pose", "view", "expression",
                                                "target_id")]
    models = list(dict.fromkeys(r["model"] for r in rows))
    per_face = {}
    for m in models:
        mine = [r for r in rows if r["model"] == m]
        per_face[m] = {c: np.array([float(r[c]) for r in mine]) for c in metrics if all(r[c] != "" for r in mine)}
    expressions = np.array([r["expression"] for r in rows if r["model"] == models[0]])
    return per_face, expressions


def rescore_set(set_name: str, split: str, models: list[str], conditions: list[str], out: Path) -> dict:
    """:func:`run_set`'s result from the CSVs it wrote (``--rescore``): no model or evaluator runs."""
    res: dict[str, dict] = {}
    for cond in conditions:
        path = out / f"{set_name}_{split}" / f"{cond.replace('=', '')}.csv"
        if not path.is_file():
            raise SystemExit(f"error: {path}: not found (run without --rescore first)")
        per_face, expressions = read_per_face(path)
        missing = [m for m in ["input", *models] if m not in per_face]
        if missing:
            raise SystemExit(f"error: {path}: no rows of {', '.join(missing)}")
        res[cond] = {name: score(per_face[name], expressions) for name in ["input", *models]}
    return res


def run_set(set_name: str, folder: Path, split_name: str, split: str, models: dict, conditions: list[str],
            out: Path) -> dict[str, dict[str, dict]]:
    from nfgan.data.photometric import parse_degradation
    from nfgan.evaluation.evaluate import (RowEmbeddings, calibration_subjects, evaluate_models, load_eval_set,
                                           with_degraded_inputs, write_per_face_csv)
    from nfgan.evaluation.evaluators import expression_evaluators, identity_evaluators

    clean = load_eval_set(folder, split_name, split)
    cal = calibration_subjects(clean, split_name, "all")
    id_evals = [] if set_name in ONE_PHOTO_PER_PERSON else identity_evaluators(["faceres"])
    expr_evals = expression_evaluators(["faceapi"])
    cache = RowEmbeddings(clean.dataset)
    res: dict[str, dict] = {}
    for cond in conditions:
        t0 = time.time()
        es = clean if cond == "clean" else with_degraded_inputs(clean, parse_degradation(cond))
        _, per_face, _ = evaluate_models(models, es, id_evals, expr_evals, cal, kid_subsets=1, progress=False,
                                         cache=cache)
        write_per_face_csv(out / f"{set_name}_{split}" / f"{cond.replace('=', '')}.csv", es, per_face)
        expressions = np.asarray(es.expressions)
        res[cond] = {name: score(per, expressions) for name, per in per_face.items() if name != "ground_truth"}
        print(f"  {set_name} {cond}: {len(es)} inputs, {time.time() - t0:.0f} s", flush=True)
    return res


def _delta(v, base, scale=100.0, digits=1) -> str:
    return "" if v is None or base is None else f" ({scale * (v - base):+.{digits}f})"


def _cell(s: dict, base: dict | None) -> str:
    """gt pass / neutral (expressive) / SSIM of one model under one condition; with ``base`` (the same model on
    clean inputs), each followed by its change from there."""
    b = base or {}
    d = (lambda key, *fmt: _delta(s[key], b.get(key), *fmt)) if base is not None else (lambda *_: "")
    return (f"{_pct(s['gt_pass'])}{d('gt_pass')} / {_pct(s['neutral_expressive'])}{d('neutral_expressive')}"
            f" / {s['ssim']:.3f}{d('ssim', 1.0, 3)}")


def summary(results: dict[str, dict], models: list[str]) -> str:
    head = ["set", "condition"] + [f"{m}: gt pass / neutral (expressive) / SSIM" for m in ["input", *models]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for set_name, per_cond in results.items():
        base = per_cond.get("clean", {})
        for cond, per_model in per_cond.items():
            cells = [set_name, cond] + [_cell(per_model[m], None if cond == "clean" else base.get(m, {}))
                                        for m in ["input", *models]]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def pooled(results: dict[str, dict], models: list[str]) -> str:
    """Each condition over every set's inputs (weighted by inputs; gt pass over the sets with a threshold)."""
    conds = list(next(iter(results.values())))
    head = ["condition"] + [f"{m}: gt pass / neutral (expressive) / SSIM" for m in ["input", *models]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cond in conds:
        cells = [cond]
        for m in ["input", *models]:
            vals = []
            for key in ("gt_pass", "neutral_expressive", "ssim"):
                num = den = 0.0
                for per_cond in results.values():
                    s = per_cond[cond][m]
                    if s[key] is not None:    # the neutral rate weighs each set by its expressive inputs
                        w = s["n_expressive"] if key == "neutral_expressive" else s["n"]
                        num, den = num + s[key] * w, den + w
                vals.append(num / den if den else None)
            cells.append(f"{_pct(vals[0])} / {_pct(vals[1])} / {vals[2]:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", metavar="NAME=MODEL")
    ap.add_argument("--split", default="val")
    ap.add_argument("--sets", default=",".join(s[0] for s in SETS))
    ap.add_argument("--conditions", default=",".join(CONDITIONS),
                    help="'clean' and/or STEP=VALUE settings of `nfgan evaluate --degrade` (one step each; "
                         "'clean' is always scored, as the baseline), or 'framing' for the re-framing list")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "photometric_robustness")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rescore", action="store_true",
                    help="make the tables again from the per-condition CSVs already in --out (no model runs)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from nfgan.data.photometric import parse_degradation
    from nfgan.evaluation.evaluate import load_model, parse_run_spec

    listed = ",".join(FRAMING_CONDITIONS) if args.conditions.strip() == "framing" else args.conditions
    conditions = [c.strip() for c in listed.split(",") if c.strip() and c.strip() != "clean"]
    for c in conditions:              # a bad setting fails before any model is loaded
        try:
            parse_degradation(c)
        except ValueError as e:
            ap.error(str(e))
    conditions = ["clean", *conditions]
    paths = dict(parse_run_spec(spec) for spec in args.models)
    models = {} if args.rescore else {name: load_model(path) for name, path in paths.items()}
    results = {}
    for set_name, folder, split_name in SETS:
        if set_name not in args.sets.split(","):
            continue
        if args.rescore:
            if (args.out / f"{set_name}_{args.split}").is_dir():
                results[set_name] = rescore_set(set_name, args.split, list(paths), conditions, args.out)
            continue
        if not (REPO / folder / "manifest.csv").is_file():
            print(f"note: {REPO / folder} is not prepared; {set_name} skipped", flush=True)
            continue
        results[set_name] = run_set(set_name, REPO / folder, split_name, args.split, models, conditions, args.out)
    if not results:
        print("error: no prepared set to score", file=sys.stderr)
        return 1
    names = list(paths)
    given = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--rescore"]
    command = "python benchmarks/photometric_robustness.py " + " ".join(given)
    text = (f"Split: {args.split}. Command: {command}\n\nCells: gt pass faceres % / face-api neutral on expressive "
            f"inputs % / SSIM to the clean real neutral face; in brackets the change from the same model's clean "
            f"inputs (points, SSIM units).\n\n" + summary(results, names)
            + "\nEvery set's inputs pooled:\n\n" + pooled(results, names))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"summary_{args.split}.md").write_text(text)
    (args.out / f"summary_{args.split}.json").write_text(json.dumps(
        {"command": command, "split": args.split, "models": {n: str(p) for n, p in paths.items()},
         "results": results}, indent=1))
    print(text)
    print(f"photometric_robustness split={args.split} models={','.join(names)} sets={','.join(results)} "
          f"conditions={len(conditions)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
