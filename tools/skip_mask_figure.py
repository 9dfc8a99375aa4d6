"""docs/figures/skip_mask.png: what shutting the U-Net's skips inside the mouth and brows changes, on London test
people (CC BY): their smiling photos, and their real neutral faces deformed into other expressions by the Surrey
Face Model (`nfgan synth-expressions`), each normalised by the models given, beside the real neutral face.

    git show 71604f4:src/nfgan/assets/pix2pix_all_data_research64.safetensors > /tmp/plain.safetensors
    git show b7c91f7:src/nfgan/assets/pix2pix_all_data_research64.safetensors > /tmp/skipmask.safetensors
    git show 3ad3522:src/nfgan/assets/pix2pix_all_data_research64.safetensors > /tmp/feat.safetensors
    git show 42a0a5a:src/nfgan/assets/pix2pix_all_data_research64.safetensors > /tmp/feat05.safetensors
    git show a998237:src/nfgan/assets/pix2pix_all_data_research64.safetensors > /tmp/feat10.safetensors
    git show 2cdd1cf:src/nfgan/assets/pix2pix_all_data_research64.safetensors > /tmp/feat10_ema.safetensors
    python tools/skip_mask_figure.py out/london64 out/london64_sfm docs/figures/skip_mask.png \
        --model plain=/tmp/plain.safetensors --model skipmask=/tmp/skipmask.safetensors \
        --model feat=/tmp/feat.safetensors --model feat05=/tmp/feat05.safetensors \
        --model feat10=/tmp/feat10.safetensors --model feat10_ema=/tmp/feat10_ema.safetensors \
        --model default=default --model cc_by=cc_by

(71604f4 is the last commit whose shipped default is `plain`, the same chain without the mask; b7c91f7 the last
whose default is `skipmask`, the chain with the mask and without L_feat; 3ad3522 the last whose default is
`feat`, L_feat at 0.2; 42a0a5a the last whose default is `feat05`, L_feat at 0.5; a998237 the last whose default
is `feat10`, L_feat at 1.0 without the moving average; 2cdd1cf the last whose default is `feat10_ema`, one second
stage with the moving average, before round 44's average of three.) Rows: the test
split's smiling photos, frontal and 3/4, then its synthetic faces of each SFM expression; ``--per-label`` inputs
(default 2) of each, people taken in turn.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def _picks(es, want: list[str], per_label: int) -> list[int]:
    """Indices of ``es`` inputs, ``per_label`` for each ``view/expression`` label in ``want``, people in turn."""
    out = []
    for label in want:
        view, expr = label.rsplit("/", 1)
        idx = [j for j in range(len(es)) if es.views[j] == view and es.expressions[j] == expr]
        seen: set[str] = set()
        for j in idx:
            if es.input_subjects[j] not in seen and len(seen) < per_label:
                seen.add(es.input_subjects[j])
                out.append(j)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("london", type=Path, help="prepared London folder (nfgan prepare london)")
    ap.add_argument("london_sfm", type=Path, help="its synthetic expressions (nfgan synth-expressions)")
    ap.add_argument("out", type=Path, help="PNG to write")
    ap.add_argument("--model", action="append", metavar="[NAME=]MODEL",
                    help="a column: shipped name, run, checkpoint or exported file, NAME= sets its label, as for "
                         "nfgan evaluate (repeatable; default: default)")
    ap.add_argument("--per-label", type=int, default=2, help="inputs per view/expression row group (default 2)")
    ap.add_argument("--scale", type=int, default=2, help="pixel zoom (default 2)")
    args = ap.parse_args(argv)

    from nfgan.atomic import save_image
    from nfgan.evaluation.evaluate import load_eval_set, parse_run_spec
    from nfgan.evaluation.report import tile
    from nfgan.inference import load_model

    specs = [parse_run_spec(s) for s in (args.model or ["default"])]
    models = [(name, load_model(path)) for name, path in specs]
    rows, labels = [], []
    for folder, want in ((args.london, ["frontal/happy", "3/4/happy"]),
                         (args.london_sfm, ["frontal/anger", "frontal/disgust", "frontal/fear", "frontal/sadness",
                                            "frontal/surprise"])):
        es = load_eval_set(folder, "london", "test")
        picks = np.asarray(_picks(es, want, args.per_label))
        if not len(picks):
            continue
        faces, lms = es.input_images[picks], es.input_landmarks[picks]
        poses, flipped = [es.poses[j] for j in picks], [es.flipped[j] for j in picks]
        outs = [m.normalize(faces, poses, flipped, landmarks=lms) for _, m in models]
        for r, j in enumerate(picks):
            rows.append([np.asarray(faces[r])] + [np.asarray(o[r]) for o in outs] + [np.asarray(es.target_images[j])])
            labels.append(es.expressions[j] + (" 3/4" if es.views[j] == "3/4" else "")
                          + (" SFM" if folder == args.london_sfm else ""))
    if not rows:
        raise SystemExit("no test inputs of the wanted views and expressions in those folders")
    grid = tile(rows, ["input"] + [n for n, _ in specs] + ["real"], labels, label_w=86)
    save_image(args.out, np.kron(grid, np.ones((args.scale, args.scale), np.uint8)))
    print(f"wrote {args.out} ({len(rows)} inputs; columns: input, {', '.join(n for n, _ in specs)}, real)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
