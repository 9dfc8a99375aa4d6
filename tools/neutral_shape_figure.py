"""docs/figures/neutral_shape.png: geometric neutralisation (``data.neutralize_shape``) on London faces (CC BY).

    python tools/neutral_shape_figure.py out/london64 out/london64_sfm docs/figures/neutral_shape.png [--split val]

Each row is one person of the split (London's validation people by default: the map was fit on the training
people): an expressive face, the same face warped onto the neutral landmarks the shipped map predicts
(:func:`nfgan.data.neutral_shape.neutralize`), and the person's real frontal neutral photo. The expressive faces
are London's smiling photos and, from the second folder, the Surrey Face Model's synthetic expressions of the
same people (``nfgan synth-expressions``; skip it with ``-``). The printed lines give the mean landmark distance
to the real neutral landmarks before and after, per expression.
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="prepared London folder (nfgan prepare london)")
    ap.add_argument("synthetic", help="its synthetic expressions (nfgan synth-expressions), or - for none")
    ap.add_argument("out", type=Path, help="PNG to write")
    ap.add_argument("--split", default="val", choices=("train", "val", "test"))
    ap.add_argument("--rows", type=int, default=6)
    ap.add_argument("--scale", type=int, default=2, help="pixel zoom (default 2)")
    args = ap.parse_args(argv)

    from nfgan.atomic import save_image
    from nfgan.data.dataset import PreparedDataset
    from nfgan.data.neutral_shape import landmark_error, neutralize, pair_landmarks, shipped
    from nfgan.data.pairs import load_splits
    from nfgan.evaluation.report import tile

    shape = shipped()
    people = set(load_splits("london")[args.split])
    sets = [PreparedDataset(args.data)] + ([] if args.synthetic == "-" else [PreparedDataset(args.synthetic)])
    real = sets[0]
    errors = defaultdict(list)
    shown = []
    for person in sorted(people):
        target = real.indices(subject=person, pose="frontal", expression="neutral")
        if not len(target):
            continue
        t = int(target[0])
        neutral_lm = np.asarray(real.landmarks[t], np.float64)
        row = []
        for ds in sets:
            first = True
            for i in ds.indices(subject=person, pose="frontal").tolist():
                rec = ds.records[i]
                if rec["expression"] == "neutral":
                    continue
                face, lm = np.asarray(ds.images[i]), np.asarray(ds.landmarks[i], np.float64)
                x, y = pair_landmarks(lm, neutral_lm)
                kind = rec["expression"] + (" (SFM)" if rec.get("synthetic") == "1" else "")
                pair = [{"x": x, "y": y}]
                errors[kind].append((landmark_error(None, pair)[0], landmark_error(shape, pair)[0]))
                if first:
                    row += [face, neutralize(face, lm, shape)]
                    first = False
        if len(row) == 4 and len(shown) < args.rows:
            shown.append(row + [np.asarray(real.images[t])])
    if not shown:
        print(f"{args.data}: no {args.split} person with an expressive and a neutral frontal photo")
        return 1
    print(f"landmark distance to the real neutral landmarks (px at 64 px), {args.split} people: before -> after")
    for kind, e in sorted(errors.items()):
        e = np.asarray(e)
        print(f"  {kind:22s} {len(e):4d} faces  {e[:, 0].mean():.2f} -> {e[:, 1].mean():.2f}")
    grid = tile(shown, ["smiling", "warped", "SFM", "warped", "neutral"])
    save_image(args.out, np.kron(grid, np.ones((args.scale, args.scale), np.uint8)))
    print(f"wrote {args.out} ({len(shown)} people)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
