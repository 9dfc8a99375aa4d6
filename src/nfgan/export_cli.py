"""``nfgan export``: the generators' and FER models' networks as ONNX graphs (docs/deploy.md). The library parts
are ``nfgan.inference.export`` (generators) and ``nfgan.fer.onnx`` (FER models)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from nfgan.checkpoint import CheckpointError
from nfgan.inference.export import (CHECK_TOL, OPSET, ExportError, _write, check_graph, generator_graphs,
                                    model_stem, require_onnx)
from nfgan.inference.generator import default_model_path, load_model, nfgan_model_path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=["onnx"], default="onnx", help="export format (onnx)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder for the .onnx files")
    p.add_argument("--model", type=Path, action="append", default=None,
                   help="a generator to export (run folder, checkpoint or exported model; repeatable); default: "
                        "the shipped default normaliser (research use only) and the shipped NFGAN; a shipped "
                        "model's name (cc_by, london, ...) works too; PATH#live or PATH#ema chooses a checkpoint's live "
                        "generator or its moving average")
    p.add_argument("--no-generators", action="store_true", help="export no generator (only --fer-model)")
    p.add_argument("--fer-model", type=Path, action="append", default=[],
                   help="a FER model (nfgan fer train: fer_model.safetensors or its folder) to export too (repeatable)")
    p.add_argument("--opset", type=int, default=OPSET, help=f"ONNX operator set (default {OPSET})")
    p.add_argument("--no-check", action="store_true",
                   help="skip running each graph in onnxruntime against torch (on by default when installed)")


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 every graph written (and checked), 1 a check failed, 2 nothing could run (a missing
    package, an unreadable model, an unwritable folder)."""
    from nfgan.inference.normalizer import shown

    def fail(msg: str) -> int:
        print(f"error: {msg}", file=sys.stderr)
        return 2

    try:
        require_onnx()
    except ExportError as e:
        return fail(str(e))
    check = not args.no_check
    if check:
        from nfgan.inference.export import require_onnxruntime

        try:
            require_onnxruntime()
        except ImportError:
            print("note: onnxruntime is not installed: the graphs are written unchecked", file=sys.stderr)
            check = False
    gens = [] if args.no_generators else (args.model or [default_model_path(), nfgan_model_path()])
    if not gens and not args.fer_model:
        return fail("nothing to export: --no-generators and no --fer-model")
    jobs = []   # (label, {name: bytes}, {name: (module, example)})
    try:
        for path in gens:
            g = load_model(path)
            s = g.size
            graphs = generator_graphs(g, model_stem(path), args.opset)
            x = torch.rand(3, g.rule.channels, s, s) * 2 - 1
            mods = {}
            for name in graphs:
                if name.endswith("_encoder.onnx"):
                    mods[name] = (g.nets["enc"], x)
                elif name.endswith("_decoder.onnx"):
                    with torch.no_grad():
                        mods[name] = (g.nets["dec"], g.nets["enc"](x))
                else:
                    mods[name] = (g, x)
            jobs.append((f"{g.kind} {shown(path)}", graphs, mods))
            if g.pull is not None:
                print(f"note: {shown(path)} pulls its turned outputs towards the photo's identity (a PyTorch step, "
                      "nfgan.inference.identity_pull); the ONNX graph is the plain generator, whose outputs for "
                      "turned faces are the ones of identity_pull=False", file=sys.stderr)
        for path in args.fer_model:
            from nfgan.fer.classifier import FERClassifier, FERModelError
            from nfgan.fer.onnx import _FERHead, fer_graph

            try:
                clf = FERClassifier(path)
            except FERModelError as e:
                return fail(str(e))
            c = int(clf.meta["crop"])
            name = f"{model_stem(clf.path)}.onnx"
            jobs.append((f"fer {shown(clf.path)}", {name: fer_graph(clf, args.opset)},
                         {name: (_FERHead(clf.net, exportable=False), torch.randn(3, 1, c, c))}))
    except (CheckpointError, ExportError, FileNotFoundError, ValueError) as e:
        return fail(shown(e))
    except Exception as e:   # a net the tracer cannot export
        return fail(f"export failed: {type(e).__name__}: {shown(e)}")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return fail(f"cannot create {shown(args.out)}: {e.strerror or e}")
    bad = 0
    for label, graphs, mods in jobs:
        for name, data in graphs.items():
            dst = args.out / name
            try:
                _write(dst, data)
            except OSError as e:
                return fail(f"cannot write {shown(dst)}: {e.strerror or e}")
            note = ""
            if check:
                diff = check_graph(data, *mods[name])
                ok = diff <= CHECK_TOL
                bad += not ok
                note = f"  onnxruntime vs torch: max |diff| {diff:.1e}" + ("" if ok else f" > {CHECK_TOL:g}: FAILED")
            print(f"{shown(dst)}  ({label}, {len(data) / 2**20:.1f} MiB){note}")
    return 1 if bad else 0
