"""A model file with geometric neutralisation of its frontal inputs, own-shape frontalisation of its turned inputs
and/or the identity pull of its turned outputs added at inference (no retraining).

    python tools/set_input_rule.py MODEL OUT.safetensors [--neutralize-mode warp_frame \
        [--neutralize-threshold T] [--neutral-shape-map FILE]] [--frontal-shape own [--frontal-shape-map FILE]] \
        [--identity-pull [--pull-steps 5] [--pull-step-size 0.05] [--pull-levels 3]]

MODEL is a run folder, a checkpoint (PATH#live / PATH#ema as for ``nfgan evaluate``), an exported file or a
shipped model's name. OUT holds the same generator weights (float32) with the model's input rule extended by step 3
of ``nfgan.data.generator_input`` (``data.neutralize_mode``, ``data.neutralize_threshold``; the map, the shipped one
by default, embedded; with ``--frontal-shape own``, step 2 onto each turned face's own predicted frontal
landmarks, ``nfgan.data.frontal_shape``, its map embedded; with ``--identity-pull``, the pull of
``nfgan.inference.identity_pull`` recorded), so that ``nfgan evaluate NAME=OUT``,
``nfgan normalize --model OUT`` and ONNX export apply it.
The people the model learned from (its ``train_subjects``) and those the map was fit on (the training and
validation people of the splits it records) are written as the file's ``train_subjects`` (``export_model`` does this
for every file whose rule uses a map), so that the FER leak guard (``nfgan fer cv --augment OUT``) can check them;
where either is unknown, none are written and the guard refuses the file. How round 22's ``gated_infer`` models were
made (docs/experiments.md). To ship a model this way with its data, licence and evaluation in the file, use
``tools/export_default_model.py --neutralize-mode``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    from nfgan.data.neutral_shape import MODES
    from nfgan.inference import export_model, load_model
    from nfgan.inference.identity_pull import IdentityPull

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("out", type=Path)
    ap.add_argument("--neutralize-mode", choices=MODES, default=None)
    ap.add_argument("--neutralize-threshold", type=float, default=0.0)
    ap.add_argument("--neutral-shape-map", type=Path, default=None,
                    help="the map's file (default: the shipped one), or 'identity': re-framing only, from no data")
    ap.add_argument("--frontal-shape", choices=("own",), default=None,
                    help="warp turned inputs onto their own predicted frontal landmarks (nfgan.data.frontal_shape)")
    ap.add_argument("--frontal-shape-map", type=Path, default=None,
                    help="the own-shape map's file (default: the shipped one)")
    ap.add_argument("--identity-pull", action="store_true",
                    help="pull turned inputs' outputs towards dlib's reading of the photo (nfgan.inference.identity_pull)")
    ap.add_argument("--pull-steps", type=int, default=None, help="the pull's Adam steps (default 5)")
    ap.add_argument("--pull-step-size", type=float, default=None, help="the pull's step size (default 0.05)")
    ap.add_argument("--pull-levels", type=int, default=None, help="encoder outputs offset, deepest first (default 3)")
    args = ap.parse_args(argv)
    if args.neutralize_mode is None and args.frontal_shape is None and not args.identity_pull:
        ap.error("nothing to add: give --neutralize-mode, --frontal-shape and/or --identity-pull")
    try:
        pull = IdentityPull.from_options(args.identity_pull, args.pull_steps, args.pull_step_size,
                                            args.pull_levels)
    except ValueError as e:
        ap.error(str(e))
    if args.neutralize_mode is None and (args.neutralize_threshold or args.neutral_shape_map):
        ap.error("--neutralize-threshold and --neutral-shape-map need --neutralize-mode")
    if args.frontal_shape is None and args.frontal_shape_map:
        ap.error("--frontal-shape-map needs --frontal-shape own")
    g = load_model(args.model)
    if args.neutralize_mode and g.rule.neutralize:
        ap.error(f"{args.model} already neutralises its frontal inputs ({g.rule})")
    if args.frontal_shape and g.rule.frontal == "own":
        ap.error(f"{args.model} already warps turned inputs onto their own shape ({g.rule})")
    if pull is not None and g.pull is not None:
        ap.error(f"{args.model} already pulls its turned outputs ({g.pull})")
    rule, added = g.rule, {}
    try:
        if args.neutralize_mode:
            rule = rule.with_step3(args.neutralize_mode, args.neutralize_threshold, args.neutral_shape_map)
            added.update({"mode": args.neutralize_mode, "threshold": args.neutralize_threshold,
                          "map": str(args.neutral_shape_map) if args.neutral_shape_map else "shipped"})
        if args.frontal_shape:
            rule = rule.with_own_shape(args.frontal_shape_map)
            added["frontal_shape_map"] = str(args.frontal_shape_map) if args.frontal_shape_map else "shipped"
    except ValueError as e:
        ap.error(str(e))
    if pull is not None:
        added["identity_pull"] = pull.as_dict()
    try:   # records the maps' people too
        out = export_model(g, args.out, rule=rule, identity_pull=pull, input_rule_added=added)
    except ValueError as e:
        ap.error(str(e))
    written = load_model(out)
    subjects = written.info.get("train_subjects")
    print(f"wrote {out}: {written.rule}" + (f", identity pull {written.pull}" if written.pull else "") + "; "
          + (f"{len(subjects)} training subjects recorded" if subjects is not None else
             "training subjects unknown (the model's or the map's), none recorded"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
