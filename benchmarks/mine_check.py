"""Target mining (`nfgan mine`) against the labelled sets: precision and recall of the chosen targets.

    python benchmarks/mine_check.py [--root out] [--sets london64 canada64 jaffe64 ckplus_wn64 yale64]
                                    [--json FILE] [--keep DIR]

For each prepared folder (written by ``nfgan prepare``; see docs/mining.md for the commands) the faces are
measured once (``nfgan.data.mine.measure_faces``: both expression classifiers, landmarks, pixels), then:

* ``default``: the shipped rule (``MineRule()``), k = 1 - also written as a real mined folder with
  ``nfgan.data.mine.mine`` (reusing the measures) and read back, so the table is what ``nfgan mine`` does;
* ``default k=3``: the same rule, up to three targets per person;
* ``strict``: ``max_smile=1.5`` (fewer closed-mouth smiles, lower recall);
* ``no positives``: the default rule on the set without its true frontal neutral faces - every target chosen
  there is wrong, so "persons given a target" is the false-target rate for people who have no usable target.

A correct target is a face whose label is a positive expression (``neutral``; Yale: see ``POSITIVES``) and pose
``frontal``. Roles: London, the Canadian set and JAFFE chose the thresholds (development); CK+ and Yale are
held-out checks. Prints one markdown table (the one in docs/mining.md) and, with ``--json``, every number.
Last line: ``mine_check sets=<n> precision_dev=<..> precision_heldout=<..>``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from nfgan.data.dataset import PreparedDataset  # noqa: E402
from nfgan.data.mine import MineRule, decide, label_check, measure_faces, mine, subset  # noqa: E402

#: set -> (role, positive expression labels)
SETS = {
    "london64": ("dev", ("neutral",)),
    "canada64": ("dev", ("neutral",)),
    "jaffe64": ("dev", ("neutral",)),
    "ckplus_wn64": ("held-out", ("neutral",)),
    "yale64": ("held-out", ("neutral", "neutral_noglasses", "neutral_centerlight")),
}
#: Yale's other neutral variants, counted as correct only in the "lenient" line: with glasses put on (a target
#: with glasses teaches the generator to add them) and strong side light (one half of the face dark)
YALE_LENIENT = ("neutral", "neutral_noglasses", "neutral_centerlight", "neutral_glasses", "neutral_leftlight",
                "neutral_rightlight")


def check(ds: PreparedDataset, target: np.ndarray, positives, rows=None) -> dict:
    rows = np.arange(len(ds)) if rows is None else np.asarray(rows)
    col = lambda c: [ds.records[int(i)].get(c, "") for i in rows]   # noqa: E731
    return label_check(col("subject"), col("expression"), col("pose"), target, positives)


def pct(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{100 * x:.1f}%"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=REPO / "out", help="folder holding the prepared sets (default out/)")
    ap.add_argument("--sets", nargs="*", default=list(SETS), help="prepared folder names under --root")
    ap.add_argument("--json", type=Path, help="write every number here")
    ap.add_argument("--keep", type=Path, help="write the default mined folders here (else a temporary folder)")
    args = ap.parse_args()

    results, lines = {}, []
    header = ("| set | role | variant | faces | persons | persons with a true target | targets | correct | precision "
              "| recall (faces) | persons given a target | persons given a correct one | person recall |")
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    with tempfile.TemporaryDirectory() as tmp:
        keep = args.keep or Path(tmp)
        for name in args.sets:
            root = args.root / name
            if not (root / "manifest.csv").is_file():
                print(f"skip {name}: {root} is not a prepared folder", file=sys.stderr)
                continue
            role, positives = SETS.get(name, ("other", ("neutral",)))
            ds = PreparedDataset(root)
            t0 = time.time()
            m = measure_faces(np.asarray(ds.images), None if ds.landmarks is None else np.asarray(ds.landmarks),
                              ds.column("yaw_deg"), [r.get("flipped", "0") == "1" for r in ds.records])
            secs = time.time() - t0
            subjects = ds.column("subject")
            out = {"role": role, "positives": list(positives), "measure_seconds": round(secs, 1), "variants": {}}

            # the real command's output, read back
            mined_dir = keep / f"{name}_mined"
            summary = mine(root, mined_dir, MineRule(), force=True, measures={k: v.copy() for k, v in m.items()})
            mined = PreparedDataset(mined_dir)
            target = np.asarray([s == "target" for s in mined.column("mine_status")])
            variants = {"default": check(ds, target, positives)}
            out["persons_without_target"] = summary["persons_without_target"]
            out["rejections_by_reason"] = summary["rejections_by_reason"]
            for label, rule in (("default k=3", MineRule(k=3)), ("strict", replace(MineRule(), max_smile=1.5))):
                variants[label] = check(ds, decide({k: v.copy() for k, v in m.items()}, subjects, rule).target, positives)
            if name == "yale64":
                variants["default, lenient labels"] = check(ds, target, YALE_LENIENT)
            pos = np.asarray([r["expression"] in positives and r["pose"] == "frontal" for r in ds.records])
            keep_rows = np.flatnonzero(~pos)
            dec = decide(subset(m, keep_rows), [subjects[i] for i in keep_rows], MineRule())
            variants["no positives"] = check(ds, dec.target, positives, keep_rows)
            out["variants"] = variants
            results[name] = out
            for v, c in variants.items():
                lines.append(f"| {name} | {role} | {v} | {c['faces']} | {c['persons']} | {c['persons_with_positive']} "
                             f"| {c['targets']} | {c['correct_targets']} | {pct(c['precision'])} | {pct(c['recall'])} "
                             f"| {c['persons_with_target']} | {c['persons_with_correct_target']} "
                             f"| {pct(c['person_recall'])} |")
            print(f"{name}: measured {len(ds)} faces in {secs:.1f} s; default: {variants['default']['correct_targets']}"
                  f"/{variants['default']['targets']} correct", file=sys.stderr)
    print("\n".join(lines))

    def pooled(role):
        c = [r["variants"]["default"] for r in results.values() if r["role"] == role]
        t = sum(x["targets"] for x in c)
        return sum(x["correct_targets"] for x in c) / t if t else float("nan")

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rule": MineRule().__dict__, "sets": results}, indent=1) + "\n")
    print(f"mine_check sets={len(results)} precision_dev={pooled('dev'):.4f} precision_heldout={pooled('held-out'):.4f}")
    return 0 if results else 2


if __name__ == "__main__":
    sys.exit(main())
