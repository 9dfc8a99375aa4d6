"""Neutral rates per input expression (fer, face-api) and faceres gt pass / rank-1 among every person, per model,
for each */per_face.csv under a folder (probe `push`'s screen). Markdown on stdout.

    python docs/results/push/per_class.py docs/results/push/seed0
"""
import csv
import sys
from collections import defaultdict
from pathlib import Path

from nfgan.data.schema import is_expressive


def main(root: Path) -> int:
    for f in sorted(root.glob("*/per_face.csv")):
        rows = list(csv.DictReader(open(f)))
        models = list(dict.fromkeys(r["model"] for r in rows))
        exprs = sorted({r["expression"] for r in rows if is_expressive(r["expression"])})
        print(f"\n### {f.parent.name}\n")
        print("| model | " + " | ".join(f"{e} (n)" for e in exprs) + " | gt pass | rank-1 |")
        print("|---" * (len(exprs) + 3) + "|")
        for m in models:
            by = defaultdict(list)
            for r in rows:
                if r["model"] == m:
                    by[r["expression"]].append(r)
            cells = []
            for e in exprs:
                rs = by[e]
                fer = 100 * sum(float(r["neutral_fer"]) for r in rs) / len(rs)
                api = 100 * sum(float(r["neutral_faceapi"]) for r in rs) / len(rs)
                cells.append(f"{fer:.0f} / {api:.0f} ({len(rs)})")
            mine = [r for r in rows if r["model"] == m]
            gt = 100 * sum(float(r["id_gt_pass_faceres"]) for r in mine) / len(mine)
            col = "rank1_every_faceres" if "rank1_every_faceres" in mine[0] else "rank1_faceres"
            r1 = 100 * sum(float(r[col]) for r in mine) / len(mine)
            print(f"| {m} | " + " | ".join(cells) + f" | {gt:.1f} | {r1:.1f} |")
    print("\nCells: fer / face-api neutral %, (inputs); identity by faceres over every input (rank-1 among every "
          "person of the folder: the every-person splits' gallery is everyone).")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
