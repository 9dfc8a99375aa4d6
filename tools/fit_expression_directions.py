"""Fit the expression directions of a trained U-Net model's mid skips and write a model file that takes them out
(``nfgan.inference.expression_directions``; docs/experiments.md, probe `skipproj` and round 49).

    python tools/fit_expression_directions.py MODEL OUT.safetensors [--k 16] [--sides 16,8] [--rank 256] \
        [NAME=FOLDER:SPLITS ...]

MODEL is a run folder, a checkpoint, an exported file or a shipped model's name; it must record the people it
learned from (``train_subjects``). Only the training people of each source's split file among them are read (a
file's ``train_subjects`` also names the validation people its input rule's maps were fit on). Pairs: in each
prepared folder, every frontal expressive photo of those people with the same person's frontal neutral photo (the
same CK+ sequence's first frame where there is one, else the person's first). Sources: by default the frontal ones
the model's training config names, with their split files (every averaged second stage's, for a weight average;
sources ending in ``_turned`` are left out), in name order. OUT holds the same weights with ``model.skip_proj_k``
set and the directions in the generator's buffers, so ``nfgan evaluate NAME=OUT``, ``nfgan normalize --model OUT``
and ONNX export apply the step to every input. OUT is stored like MODEL (float16 weights stay float16; the
directions are float32). To ship it, score it and write it again with its data, licence and metrics:
``tools/export_default_model.py OUT --metrics ... --out ...``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

#: metadata of MODEL carried into OUT (provenance; its measured numbers are not: the outputs change)
CARRIED = ("training_data", "license", "loss_networks", "alignment", "source_run")


def training_sources(info: dict) -> list[str]:
    """``NAME=FOLDER:SPLITS`` of the frontal sources the model's training config names."""
    parts = info.get("averaged_from") or [{"sources": (info.get("config") or {}).get("data", {}).get("sources") or {}}]
    out = {}
    for p in parts:
        for name, src in (p.get("sources") or {}).items():
            if src and not name.endswith("_turned") and src.get("root") and src.get("splits"):
                out[name] = f"{name}={src['root']}:{src['splits']}"
    return [out[k] for k in sorted(out)]


def folder_pairs(manifest: list[dict], subjects: set[str]) -> list[tuple[int, int]]:
    """(expressive row, neutral row) pairs of a prepared folder's frontal photos of ``subjects`` (``manifest``: its
    rows, ``nfgan.data.dataset.read_manifest``)."""
    from nfgan.data.schema import is_expressive

    neutral, by_seq = {}, {}
    for i, r in enumerate(manifest):
        if r["subject"] in subjects and r["pose"] == "frontal" and r["expression"] == "neutral":
            neutral.setdefault(r["subject"], i)
            if r.get("sequence"):
                by_seq.setdefault(r["sequence"], i)
    return [(i, by_seq.get(r.get("sequence") or "", neutral[r["subject"]])) for i, r in enumerate(manifest)
            if r["subject"] in neutral and r["pose"] == "frontal" and is_expressive(r["expression"])]


def read_rows(folder: Path, manifest: list[dict], rows: list[int]):
    """(photos, poses, flips, landmarks) of a prepared folder's rows (``manifest``: its rows), in order."""
    faces = np.load(folder / "faces.npy", mmap_mode="r", allow_pickle=False)
    lms = (np.load(folder / "landmarks.npy", mmap_mode="r", allow_pickle=False)
           if (folder / "landmarks.npy").is_file() else None)   # a rule without frontalisation needs none
    return (np.asarray(faces[rows]), [manifest[i]["pose"] for i in rows],
            [manifest[i].get("flipped", "0") for i in rows], None if lms is None else np.asarray(lms[rows]))


def main(argv=None) -> int:
    from nfgan.data.dataset import PreparedDatasetError, read_manifest
    from nfgan.data.pairs import SplitError, source_spec
    from nfgan.inference import export_model, load_model
    from nfgan.inference.expression_directions import DEFAULT_RANK, ExpressionDirectionsError, fit_directions, \
        with_directions
    from nfgan.inference.generator import Generator

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("out", type=Path)
    ap.add_argument("sources", nargs="*", help="NAME=FOLDER:SPLITS (prepared folder and split file or shipped split "
                    "name; default: the model's training sources)")
    ap.add_argument("--k", type=int, default=16, help="directions taken out of each skip (default 16)")
    ap.add_argument("--sides", default="16,8", help="skip sizes in px (default 16,8)")
    ap.add_argument("--rank", type=int, default=DEFAULT_RANK)
    args = ap.parse_intermixed_args(argv)
    g = load_model(args.model)
    if g.kind != "pix2pix":
        ap.error(f"{args.model}: a {g.kind} model; the step needs the pix2pix U-Net")
    if int(g.info["model"].get("skip_proj_k", 0)):
        ap.error(f"{args.model} already takes expression directions out (k {g.info['model']['skip_proj_k']})")
    subjects = g.info.get("train_subjects")
    if not subjects:
        ap.error(f"{args.model} does not record the people it learned from (train_subjects)")
    ex, ne, unique_of, folders = [], [], {}, {}
    for spec in sorted(args.sources or training_sources(g.info)):
        try:
            name, folder, splits = source_spec(spec)
        except SplitError as e:
            ap.error(str(e))
        folder = Path(folder)
        folders[name] = spec.partition("=")[2]
        try:
            manifest = read_manifest(folder / "manifest.csv")
        except PreparedDatasetError as e:
            ap.error(f"{name}: {e}")
        pairs = folder_pairs(manifest, set(map(str, subjects)) & set(map(str, splits.get("train", []))))
        print(f"{name}: {len(pairs)} pairs ({folder})", file=sys.stderr)
        if not pairs:
            continue
        rows_x, rows_y = [p[0] for p in pairs], [p[1] for p in pairs]
        offset = sum(len(a) for a in ne)
        ex.append(g.generator_inputs(*read_rows(folder, manifest, rows_x)))
        ne.append(g.generator_inputs(*read_rows(folder, manifest, rows_y)))
        for j, r in enumerate(rows_y):
            unique_of.setdefault((name, r), offset + j)
    if not ex:
        ap.error("no (expressive, neutral) pairs of the model's training people in these folders")
    sides = tuple(int(s) for s in args.sides.split(","))
    try:
        directions = fit_directions(g.nets["gen"], np.concatenate(ex), np.concatenate(ne),
                                    np.array(sorted(unique_of.values())), sides, args.rank)
        gen, cfg = with_directions(g.nets["gen"], g.model_class.build_generator, g.info["model"], directions, args.k)
    except ExpressionDirectionsError as e:
        ap.error(str(e))
    n = sum(len(a) for a in ex)
    record = {"k": args.k, "sides": list(sides), "rank": args.rank, "pairs": n,
              "sources": folders}
    new = Generator(g.kind, {**g.nets, "gen": gen}, {**g.info, "model": cfg})
    # a float16 file stays float16 (its weights are float16 values already; the directions are kept float32)
    out = export_model(new, args.out, half=g.info.get("stored_dtype") == "float16", expression_directions=record,
                       derived_from=str(args.model), **{k: g.info[k] for k in CARRIED if k in g.info})
    print(f"wrote {out}: {args.k} expression directions out of the {', '.join(map(str, sides))} px skips, fitted on "
          f"{n} pairs of {len(unique_of)} neutral photos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
