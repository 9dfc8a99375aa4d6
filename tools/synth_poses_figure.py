"""docs/figures/synth_poses.png and the check behind ``nfgan synth-expressions --yaw``: London people's real
frontal neutral faces turned by the Surrey Face Model, beside the same person's real 3/4 neutral photo.

    python tools/synth_poses_figure.py out/london64 docs/figures/synth_poses.png [--split train] [--sfm PATH]

For every person of the split with a frontal and a 3/4 neutral photo (both 3/4 sides), the frontal face is turned
to the 3/4 photo's side by each of ``--yaws`` degrees (:func:`nfgan.data.synth_expressions.synthesize_turned`,
neutral), and the printed table sets the turned landmarks' geometry (the nose tip's offset from the eyes, the
eye distance, the brow span) beside the real 3/4 photos': at which synthetic yaw London's "3/4" views lie. Needs eos-py
(``pip install 'nfgan[synth]'``) and the SFM folder. The figure shows ``--rows`` people (London faces only, CC BY):
frontal, the turns, the real 3/4 photo.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="prepared London folder (nfgan prepare london)")
    ap.add_argument("out", type=Path, help="PNG to write")
    ap.add_argument("--split", default="train", choices=("train", "val", "test"),
                    help="whose faces (default: the training people, whom nothing here is chosen against)")
    ap.add_argument("--sfm", default=None, help="Surrey Face Model folder (default $NFGAN_SFM, else ../shared/models/sfm)")
    ap.add_argument("--yaws", default="15,20,25,30,35,40,45", help="turns to try, degrees (comma-separated)")
    ap.add_argument("--rows", type=int, default=6)
    ap.add_argument("--scale", type=int, default=2, help="pixel zoom (default 2)")
    args = ap.parse_args(argv)

    from nfgan.atomic import save_image
    from nfgan.data import synth_expressions as SE
    from nfgan.data.dataset import PreparedDataset
    from nfgan.data.pairs import load_splits
    from nfgan.evaluation.report import tile

    yaws = [float(y) for y in args.yaws.split(",") if y.strip()]
    ds = PreparedDataset(args.data)
    people = load_splits("london")[args.split]
    model = SE.SFM.load(args.sfm)
    pairs, shown = [], []
    for person in people:
        front = ds.indices(subject=person, pose="frontal", expression="neutral")
        if not len(front):
            continue
        i = int(front[0])
        face, lm = np.asarray(ds.images[i]), np.asarray(ds.landmarks[i], dtype=np.float64)
        try:
            camera, vertices = model.fit(lm, ds.size)
            verts = SE.landmark_vertices(model, camera, vertices, lm)
        except (SE.FitFailed, RuntimeError, ValueError):
            continue
        for pose in ("right_3quarter", "left_3quarter"):
            real = ds.indices(subject=person, pose=pose, expression="neutral")
            if not len(real):
                continue
            real_lm = np.asarray(ds.landmarks[int(real[0])], dtype=np.float64)
            # the side the real photo's nose points to (a prepared folder may hold mirrored photos)
            sign = 1.0 if real_lm[30, 0] >= real_lm[36:48, 0].mean() else -1.0
            made = [SE.synthesize_turned(model, face, lm, camera, vertices, verts, None, sign * y) for y in yaws]
            turned = [m[0] for m in made]
            pairs.append((face, turned, np.asarray(ds.images[int(real[0])]),
                          [_geometry(x, sign) for x in [lm] + [m[1] for m in made] + [real_lm]]))
            if pose == "right_3quarter" and len(shown) < args.rows:
                shown.append([face] + turned[::2] + [np.asarray(ds.images[int(real[0])])])
    if not pairs:
        print(f"{args.data}: no {args.split} person with frontal and 3/4 neutral photos")
        return 1
    g = np.array([p[3] for p in pairs])                      # people x (frontal, turns..., real) x 3
    print(f"{len(pairs)} real 3/4 photos of {args.split} people and their frontal faces turned to the same side "
          f"(means, px at {ds.size} px; dx signed towards the turn):")
    print(f"  {'':22s} nose tip - eyes dx   eye distance   brow span")
    rows = [("frontal photo", 0)] + [(f"turned {y:g} deg", k + 1) for k, y in enumerate(yaws)] + \
        [("real 3/4 photo", len(yaws) + 1)]
    for name, k in rows:
        print(f"  {name:22s} {g[:, k, 0].mean():15.1f} {g[:, k, 1].mean():14.1f} {g[:, k, 2].mean():11.1f}")
    heads = ["frontal"] + [f"{y:g} deg" for y in yaws[::2]] + ["real 3/4"]
    grid = tile(shown, heads)
    save_image(args.out, np.kron(grid, np.ones((args.scale, args.scale), np.uint8)))
    print(f"wrote {args.out} ({len(shown)} people)")
    return 0


def _geometry(lm: np.ndarray, sign: float) -> list[float]:
    """How turned a face's landmarks look: the nose tip's offset from the eye centres' midpoint (signed towards
    ``sign``), the distance between the eye centres and the span of the brows."""
    lm = np.asarray(lm, dtype=np.float64)
    left, right = lm[36:42].mean(0), lm[42:48].mean(0)
    return [sign * float(lm[30, 0] - (left[0] + right[0]) / 2), float(np.linalg.norm(right - left)),
            float(np.ptp(lm[17:27, 0]))]


if __name__ == "__main__":
    raise SystemExit(main())
