"""Probe `perclass` (docs/experiments.md, "Expression directions per class (probe)"): the expression directions of
`tools/fit_expression_directions.py` fitted so that every expression class of the training pairs has its say.

    python docs/results/perclass/fit.py MODEL OUT.safetensors --mode perclass --k 2    # k directions per class
    python docs/results/perclass/fit.py MODEL OUT.safetensors --mode balanced --k 16   # classes weighted equally
    python docs/results/perclass/fit.py MODEL --counts                                # pairs per class, no file
    python docs/results/perclass/fit.py MODEL --mechanics                             # no evaluator, a table

The pairs, the people (each source's training split among the file's ``train_subjects``), the sources (the model's
training config's frontal ones) and the neutral spread are the tool's. ``perclass``: for each expression label of
the pairs (the prepared folders' ``expression`` column), the tool's expression-specific directions of that class's
displacements alone, the first ``k`` of each, joined and orthonormalised (classes in name order); the file takes
them all out (``k`` x classes directions). ``plus``: the tool's first 16 directions, then ``perclass``'s, joined and
orthonormalised in that order. ``balanced``: one fit as the tool's, each displacement weighted by one
over its class's count, the first ``k``. Writes the file as the tool does (its record names the mode).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tools"))

from fit_expression_directions import CARRIED, folder_pairs, read_rows, training_sources  # noqa: E402


def collect(g, part: str = "train"):
    """(expressive inputs, neutral inputs, labels, unique neutral rows, sources) of the pairs of the model's people of
    each source's split ``part`` (``val``: the split's validation people, whether or not the file names them)."""
    from nfgan.data.dataset import read_manifest
    from nfgan.data.pairs import source_spec

    ex, ne, labels, unique_of, folders = [], [], [], {}, {}
    subjects = set(map(str, g.info["train_subjects"]))
    for spec in sorted(training_sources(g.info)):
        name, folder, splits = source_spec(spec)
        folder = Path(folder)
        folders[name] = spec.partition("=")[2]
        manifest = read_manifest(folder / "manifest.csv")
        people = set(map(str, splits.get(part, [])))
        pairs = folder_pairs(manifest, people & subjects if part == "train" else people)
        if not pairs:
            continue
        rows_x, rows_y = [p[0] for p in pairs], [p[1] for p in pairs]
        offset = sum(len(a) for a in ne)
        ex.append(g.generator_inputs(*read_rows(folder, manifest, rows_x)))
        ne.append(g.generator_inputs(*read_rows(folder, manifest, rows_y)))
        labels += [manifest[i]["expression"] for i in rows_x]
        for j, r in enumerate(rows_y):
            unique_of.setdefault((name, r), offset + j)
    return np.concatenate(ex), np.concatenate(ne), np.array(labels), np.array(sorted(unique_of.values())), folders


def fit(gen, ex, ne, labels, unique, mode: str, k: int, sides, rank: int) -> dict:
    from nfgan.inference.expression_directions import expression_specific, skip_maps

    a, b = skip_maps(gen, ex, sides), skip_maps(gen, ne, sides)
    classes = sorted(set(labels))
    out = {}
    for s in a:
        c = b[s].mean(0)
        d, nd = a[s] - b[s], b[s][torch.as_tensor(unique)] - c
        if mode in ("perclass", "plus"):
            cols = [expression_specific(d[torch.as_tensor(labels == e)], nd, rank)[:, :k] for e in classes]
            if mode == "plus":   # the tool's pooled 16 first, then each class's k
                cols.insert(0, expression_specific(d, nd, rank)[:, :16])
            q, _ = torch.linalg.qr(torch.cat(cols, 1))
        else:
            count = {e: int((labels == e).sum()) for e in classes}
            w = torch.tensor([1.0 / count[e] for e in labels], dtype=d.dtype)
            q = expression_specific(d * (w / w.mean()).sqrt()[:, None], nd, rank)
        out[s] = (q, c)
    return out


def mechanics(g, ex, ne, labels, unique) -> int:
    """For the tool's pooled directions (k 16, 32, 64) and each mode: per class, the share of the validation people's
    displacement energy the directions hold, and the share of their neutral faces' deviation from ``c`` (what the
    step takes from a neutral face); the 16 px skip."""
    from nfgan.inference.expression_directions import DEFAULT_RANK, fit_directions, skip_maps

    vex, vne, vlab, vuni, _ = collect(g, "val")
    gen = g.nets["gen"]
    pooled = fit_directions(gen, ex, ne, unique, (16,))[16][0]
    bases = {f"pooled k {k}": pooled[:, :k] for k in (16, 32, 64)}
    for mode, k in (("perclass", 1), ("perclass", 2), ("perclass", 3), ("plus", 1), ("balanced", 16)):
        q = fit(gen, ex, ne, labels, unique, mode, k, (16,), DEFAULT_RANK)[16][0]
        bases[f"{mode} k {k}"] = q[:, :k] if mode == "balanced" else q
    c = skip_maps(gen, ne, (16,))[16].mean(0)
    va, vb = skip_maps(gen, vex, (16,))[16], skip_maps(gen, vne, (16,))[16]
    d, nd = va - vb, vb[torch.as_tensor(vuni)] - c
    classes = sorted(set(vlab))
    print(f"validation pairs {len(vlab)}: " + ", ".join(f"{e} {int((vlab == e).sum())}" for e in classes))
    print("| directions | n | " + " | ".join(classes) + " | all | neutral deviation held |")
    print("|---" * (len(classes) + 4) + "|")
    for name, q in bases.items():
        def held(x):
            return float(((x @ q) ** 2).sum() / (x ** 2).sum())
        row = [f"{held(d[torch.as_tensor(vlab == e)]):.3f}" for e in classes]
        print(f"| {name} | {q.shape[1]} | " + " | ".join(row) + f" | {held(d):.3f} | {held(nd):.3f} |")
    return 0


def main(argv=None) -> int:
    from nfgan.inference import export_model, load_model
    from nfgan.inference.expression_directions import DEFAULT_RANK, with_directions
    from nfgan.inference.generator import Generator

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("out", type=Path, nargs="?")
    ap.add_argument("--mode", choices=("perclass", "plus", "balanced"), default="perclass")
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--counts", action="store_true")
    ap.add_argument("--mechanics", action="store_true")
    args = ap.parse_args(argv)
    g = load_model(args.model)
    if int(g.info["model"].get("skip_proj_k", 0)):
        ap.error(f"{args.model} already takes expression directions out")
    ex, ne, labels, unique, folders = collect(g)
    classes, counts = np.unique(labels, return_counts=True)
    print(f"{args.model}: {len(labels)} pairs, {len(unique)} neutral photos; "
          + ", ".join(f"{e} {n}" for e, n in zip(classes, counts)))
    if args.counts:
        return 0
    if args.mechanics:
        return mechanics(g, ex, ne, labels, unique)
    sides = (16, 8)
    directions = fit(g.nets["gen"], ex, ne, labels, unique, args.mode, args.k, sides, DEFAULT_RANK)
    total = args.k if args.mode == "balanced" else next(iter(directions.values()))[0].shape[1]
    gen, cfg = with_directions(g.nets["gen"], g.model_class.build_generator, g.info["model"], directions, total)
    record = {"k": total, "sides": list(sides), "rank": DEFAULT_RANK, "pairs": int(len(labels)), "sources": folders,
              "mode": args.mode, "k_balanced" if args.mode == "balanced" else "k_per_class": args.k}
    new = Generator(g.kind, {**g.nets, "gen": gen}, {**g.info, "model": cfg})
    out = export_model(new, args.out, half=g.info.get("stored_dtype") == "float16", expression_directions=record,
                       derived_from=str(args.model), **{k: g.info[k] for k in CARRIED if k in g.info})
    print(f"wrote {out}: {total} directions ({args.mode}, k {args.k})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
