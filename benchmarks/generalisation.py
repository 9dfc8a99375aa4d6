"""Generalisation table: normalisers evaluated on the held-out people of every face set, one `nfgan evaluate`
per (set, split), then one summary table per split with the numbers a user asks for (issue #23):

* looks like the real neutral face: output vs the person's real frontal neutral face, pass rate at the set's
  1 % FAR threshold (faceres and faceres_deep: the embedders no model trains against; dlib* is L_id's network;
  one column per identity evaluator the evaluations ran, independent ones first);
* recognisable: rank-1 among the evaluated people's real frontal neutral faces, beside the raw input's;
* neutral: share classified neutral by fer and by face-api (expressive inputs only, and all inputs);
* clean: SSIM to the ground truth and KID x 1000 against the set's real neutral faces.

    python benchmarks/generalisation.py NAME=MODEL [NAME=MODEL ...] [--split test] [--out docs/results/generalisation]

MODEL is a run folder, a checkpoint or an exported file (as for `nfgan evaluate`). Sets whose prepared folder is
missing are skipped with a note (prepare them as in configs/all_data.yaml). The last line is
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


def summary(results: dict[str, dict], models: list[str]) -> str:
    ids = identity_columns(results)
    head = (["set", "inputs", "model"] + [f"gt pass {label} %" for _, label in ids]
            + [f"rank-1 {label} %" for _, label in ids]
            + ["neutral fer % (expressive)", "neutral faceapi % (expressive)", "neutral faceapi % (all)", "SSIM",
               "KID x1000"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for set_name, m in results.items():
        for name in ["input", "ground_truth", *models]:
            res = m["models"].get(name)
            if res is None:
                continue
            g = res["groups"]["all"]
            kid = g.get("kid")
            lines.append("| " + " | ".join(
                [set_name, str(m["n_inputs"]), name] + [_pct(g.get(f"id_gt_pass_{e}")) for e, _ in ids]
                + [_pct(g.get(f"rank1_{e}")) for e, _ in ids]
                + [_pct(_expressive(res["groups"], "neutral_fer")), _pct(_expressive(res["groups"], "neutral_faceapi")),
                   _pct(g.get("neutral_faceapi")), "-" if g.get("ssim") is None else f"{g['ssim']:.3f}",
                   "-" if kid is None else f"{1000 * kid:.1f}"]) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", metavar="NAME=MODEL")
    ap.add_argument("--split", default="test")
    ap.add_argument("--sets", default=",".join(s[0] for s in SETS))
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "generalisation")
    ap.add_argument("--rescore", action="store_true",
                    help="make the table again from the metrics.json files already in --out (no model runs)")
    args = ap.parse_args(argv)
    names = [m.split("=", 1)[0] for m in args.models]
    results = {}
    for set_name, folder, split_name in SETS:
        if set_name not in args.sets.split(","):
            continue
        data = REPO / folder
        out = args.out / f"{set_name}_{args.split}"
        if args.rescore:
            if (out / "metrics.json").is_file():
                results[set_name] = json.loads((out / "metrics.json").read_text())
            continue
        if not (data / "manifest.csv").is_file():
            print(f"note: {data} is not prepared; {set_name} skipped", flush=True)
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
    table = summary(results, names)
    args.out.mkdir(parents=True, exist_ok=True)
    every = args.sets == ",".join(x[0] for x in SETS)
    (args.out / (f"summary_{args.split}.md" if every else f"summary_{args.split}_{args.sets.replace(',', '_')}.md")).write_text(
        f"Split: {args.split}. Command: python benchmarks/generalisation.py {' '.join(args.models)} "
        f"--split {args.split}{'' if every else ' --sets ' + args.sets}\n\n" + table)
    print(table)
    print(f"generalisation split={args.split} models={','.join(names)} sets={','.join(results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
