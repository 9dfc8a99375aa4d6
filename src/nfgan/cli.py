"""The ``nfgan`` command line. Each sub-command lives in the module that does the work.

A command module exposes ``add_arguments(parser)`` and ``run(args) -> int``. Only the chosen command's module
is imported, so ``nfgan --help`` stays fast and a missing optional piece cannot break the others.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS = {
    "prepare": ("nfgan.data.prepare", "align a dataset's photos into a prepared dataset of 64x64 faces"),
    "merge-prepared": ("nfgan.data.shard_merge", "join the shard folders of `nfgan prepare --shard I/N` into one"),
    "synth-expressions": ("nfgan.data.synth_expressions",
                          "synthetic expressive (and, with --yaw, turned) inputs from frontal neutral faces (Surrey Face Model; non-commercial)"),
    "mine": ("nfgan.data.mine", "choose each person's frontal neutral target faces without expression/pose labels"),
    "splits": ("nfgan.data.pairs", "split a prepared dataset's subjects into train / val / test"),
    "train": ("nfgan.training.loop", "train a generator model (NFGAN, or the pix2pix U-Net) from a YAML config"),
    "normalize": ("nfgan.inference.normalizer", "synthesise frontal neutral faces with a trained model"),
    "traverse": ("nfgan.inference.traverse", "latent morph from a face's code to its normalised face's code"),
    "evaluate": ("nfgan.evaluation.evaluate", "evaluate runs: identity, neutrality, fidelity, realism, HTML report"),
    "fer": ("nfgan.fer.cli", "facial expression recognition: cross-validation with NFGAN augmentation"),
    "export": ("nfgan.export_cli", "export the generators' and a FER model's networks to ONNX (deploy)"),
    "serve": ("nfgan.serve.cli", "local web app: upload photos, see and download their frontal neutral faces"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    from nfgan import __version__

    parser = argparse.ArgumentParser(prog="nfgan", description="Normalized face generation and identity-aware FER.")
    parser.add_argument("--version", action="version", version=f"nfgan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
