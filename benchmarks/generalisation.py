"""Generalisation table: normalisers evaluated on the held-out people of every face set, one `nfgan evaluate`
per (set, split), then one summary table per split with the numbers a user asks for (issue #23):

* looks like the real neutral face: output vs the person's real frontal neutral face, pass rate at the set's
  1 % FAR threshold (faceres and faceres_deep: the embedders no model trains against; dlib* is L_id's network;
  one column per identity evaluator the evaluations ran, independent ones first);
* recognisable: rank-1 among the evaluated people's real frontal neutral faces, beside the raw input's (and, where
  the evaluations wrote it, among every person of the set: ``rank1_every_*``, the other people as distractors);
* neutral: share classified neutral by fer and by face-api (expressive inputs only, and all inputs);
* clean: SSIM to the ground truth and KID x 1000 against the set's real neutral faces.

    python benchmarks/generalisation.py NAME=MODEL [NAME=MODEL ...] [--split test] [--out docs/results/generalisation]

MODEL is a run folder, a checkpoint or an exported file (as for `nfgan evaluate`). Sets whose prepared folder is
missing are skipped with a note (prepare them as in configs/all_data.yaml).

``--turned``: the same on turned faces, 3/4 inputs only (the ``3/4/*`` group): London's real 3/4 photos and, for
the frontal sets, their faces turned 15-40 degrees by the Surrey Face Model (``nfgan synth-expressions ... --yaw
15 40``, neutral and the six expressions, three per neutral face: the command is printed for a missing folder),
whose ground truth is the real frontal neutral face they were rendered from. Written to
``summary_SPLIT_turned.md``. The last line is
``generalisation split=S models=... sets=...``. ``--rescore`` (same arguments) makes the table again from the
metrics.json files already in OUT, without running any model.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from nfgan.data.schema import is_expressive  # noqa: E402

#: (name, prepared folder, shipped split)
SETS = (("london", "out/london64", "london"), ("canada", "out/canada64", "canada"),
        ("ckplus", "out/ckplus_wn64", "ckplus_with_neutral"), ("jaffe", "out/jaffe64", "jaffe"),
        ("yale", "out/yale64", "yale"))
#: --turned: London's real 3/4 photos and the frontal sets turned by the Surrey Face Model (name, folder, split)
TURNED_SETS = (("london", "out/london64", "london"), ("ckplus_turned", "out/ckplus_wn64_turned", "ckplus_with_neutral"),
               ("jaffe_turned", "out/jaffe64_turned", "jaffe"), ("yale_turned", "out/yale64_turned", "yale"),
               ("canada_turned", "out/canada64_turned", "canada"))
#: how a --turned folder is made from its frontal set's prepared folder (non-commercial SFM, read from a path)
TURN_COMMAND = ("nfgan synth-expressions {src} {dst} --sfm ../shared/models/sfm --yaw 15 40 "
                "--expressions neutral,anger,disgust,fear,happiness,sadness,surprise --per-face 3")
#: sets with one photo per person: no genuine pairs to calibrate an identity threshold with, and every input is
#: its own ground truth; they are scored on neutrality, SSIM and realism only
ONE_PHOTO_PER_PERSON = {"canada"}


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _expressive(groups: dict, key: str) -> float | None:
    """Mean of ``key`` over the inputs that show an expression (``is_expressive``: not neutral, nor a neutral
    variant such as Yale's ``neutral_glasses``): the ``expressive`` group where the evaluation has one, else the
    ``*/EXPRESSION`` groups weighted by their size."""
    if "expressive" in groups:
        return groups["expressive"].get(key)
    tot, n = 0.0, 0
    for g, st in groups.items():
        if g.startswith("*/") and is_expressive(g[2:]) and st.get(key) is not None:
            tot += st[key] * st["n"]
            n += st["n"]
    return tot / n if n else None


def identity_columns(results: dict[str, dict]) -> list[tuple[str, str]]:
    """``(evaluator, label)`` of the identity evaluators the evaluations ran (union over sets), independent ones
    first, ``*`` on training-aligned ones; faceres and dlib* when no set ran any."""
    aligned: dict[str, bool] = {}
    for m in results.values():
        for e, c in m.get("identity_calibration", {}).items():
            aligned.setdefault(e, bool(c.get("training_aligned")))
    aligned = aligned or {"faceres": False, "dlib": True}
    return [(e, e + ("*" if aligned[e] else "")) for e in sorted(aligned, key=aligned.__getitem__)]


def summary(results: dict[str, dict], models: list[str], group: str = "all") -> str:
    """The table of ``results`` (set -> metrics.json) for ``models``, over the inputs of ``group`` (``all``, or
    ``3/4/*`` for turned inputs)."""
    ids = identity_columns(results)
    # rank-1 among every person of the set (nfgan.evaluation.evaluate.rank1), where the evaluations wrote it
    every = [(e, label) for e, label in ids if any(f"rank1_every_{e}" in res["groups"].get(group, {})
                                                   for m in results.values() for res in m["models"].values())]
    head = (["set", "inputs", "model"] + [f"gt pass {label} %" for _, label in ids]
            + [f"rank-1 {label} %" for _, label in ids] + [f"rank-1 among everyone {label} %" for _, label in every]
            + ["neutral fer % (expressive)", "neutral faceapi % (expressive)", "neutral faceapi % (all)", "SSIM",
               "KID x1000"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for set_name, m in results.items():
        for name in ["input", "ground_truth", *models]:
            res = m["models"].get(name)
            if res is None or group not in res["groups"]:
                continue
            g = res["groups"][group]
            kid = g.get("kid")
            n = m["n_inputs"] if group == "all" else g.get("n", "-")
            lines.append("| " + " | ".join(
                [set_name, str(n), name] + [_pct(g.get(f"id_gt_pass_{e}")) for e, _ in ids]
                + [_pct(g.get(f"rank1_{e}")) for e, _ in ids] + [_pct(g.get(f"rank1_every_{e}")) for e, _ in every]
                + [_pct(_expressive(res["groups"], "neutral_fer")), _pct(_expressive(res["groups"], "neutral_faceapi")),
                   _pct(g.get("neutral_faceapi")), "-" if g.get("ssim") is None else f"{g['ssim']:.3f}",
                   "-" if kid is None else f"{1000 * kid:.1f}"]) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", metavar="NAME=MODEL")
    ap.add_argument("--split", default="test")
    ap.add_argument("--sets", default=None, help="comma list of set names (default: every set)")
    ap.add_argument("--turned", action="store_true", help="turned faces, 3/4 inputs only (module docstring)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "generalisation")
    ap.add_argument("--rescore", action="store_true",
                    help="make the table again from the metrics.json files already in --out (no model runs)")
    args = ap.parse_args(argv)
    names = [m.split("=", 1)[0] for m in args.models]
    sets = TURNED_SETS if args.turned else SETS
    every = args.sets is None or args.sets == ",".join(x[0] for x in sets)
    chosen = [x[0] for x in sets] if args.sets is None else args.sets.split(",")
    results = {}
    for set_name, folder, split_name in sets:
        if set_name not in chosen:
            continue
        data = REPO / folder
        out = args.out / f"{set_name}_{args.split}"
        if args.rescore:
            if (out / "metrics.json").is_file():
                results[set_name] = json.loads((out / "metrics.json").read_text())
            continue
        if not (data / "manifest.csv").is_file():
            made = TURN_COMMAND.format(src=folder.removesuffix("_turned"), dst=folder) if folder.endswith("_turned") \
                else None
            print(f"note: {data} is not prepared; {set_name} skipped" + (f" (make it: {made})" if made else ""),
                  flush=True)
            continue
        cmd = [sys.executable, "-m", "nfgan", "evaluate", *args.models, "--data", str(data), "--splits", split_name,
               "--split", args.split, "--calibration-split", "all", "--out", str(out), "--no-figures", "--quiet",
               "--kid-subsets", "50"] + (["--identity", ""] if set_name in ONE_PHOTO_PER_PERSON else [])
        print("$", " ".join(cmd), flush=True)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"error: {set_name}: {r.stderr.strip()[-2000:]}", flush=True)
            continue
        results[set_name] = json.loads((out / "metrics.json").read_text())
    table = summary(results, names, "3/4/*" if args.turned else "all")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"summary_{args.split}" + ("_turned" if args.turned else "") + ("" if every else "_" + "_".join(chosen))
    (args.out / f"{stem}.md").write_text(
        f"Split: {args.split}. Command: python benchmarks/generalisation.py {' '.join(args.models)} "
        f"--split {args.split}{' --turned' if args.turned else ''}{'' if every else ' --sets ' + args.sets}\n\n"
        + table)
    print(table)
    print(f"generalisation split={args.split} models={','.join(names)} sets={','.join(results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
