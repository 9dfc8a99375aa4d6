"""The onnxruntime backend: a generator's ONNX graph (``nfgan export --format onnx``) run by onnxruntime on the
CPU, behind the interface of ``nfgan.inference.generator.Generator`` that ``Normalizer`` and ``nfgan normalize``
use (``normalize``, ``rule``, ``size``, ``kind``, ``info``; ``nets["enc"]`` / ``nets["dec"]`` for an NFGAN).

The model's input rule (mirroring, landmark frontalisation: ``nfgan.data.generator_input.InputRule``) runs in
numpy exactly as on the torch path, from the rule recorded in the ONNX file's metadata; only the network runs in
onnxruntime. ``load_onnx_generator`` reads an ``.onnx`` file, or exports any model ``load_model`` reads (run
folder, checkpoint, exported safetensors; ``None`` = the shipped default normaliser) to ONNX in memory first.

Needs the optional ``onnxruntime`` package (``pip install 'nfgan[onnx]'``); docs/deploy.md has the parity and
speed figures.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from nfgan.checkpoint import CheckpointError
from nfgan.data.generator_input import InputRule
from nfgan.inference.export import (ONNX_FORMAT, OnnxUnavailable, generator_graphs, make_session,  # noqa: F401
                                    require_onnxruntime, session_metadata)
from nfgan.inference.generator import RuleView, default_model_path, load_model, shipped_model


class OrtNet:
    """One ONNX graph as a callable on torch tensors (float32 in, float32 out, first output), CPU only."""

    def __init__(self, session):
        self.session = session
        self.input = session.get_inputs()[0].name

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.run(x.detach().cpu().float().numpy()))


class OnnxGenerator(RuleView):
    """A generator's ONNX graph in onnxruntime with its input rule; same ``normalize`` as ``Generator``."""

    def __init__(self, session, source: str = "", encoder=None, decoder=None, threads: int | None = None):
        """``session``: the generator graph's; ``encoder`` / ``decoder`` (NFGAN): their ONNX files or bytes,
        loaded on first use, or ``None``."""
        meta = session_metadata(session)
        if meta.get("nfgan.format") != ONNX_FORMAT or meta.get("nfgan.graph") != "normalizer":
            raise CheckpointError(f"{source}: not an nfgan generator graph (metadata nfgan.format "
                                  f"{meta.get('nfgan.format')!r}, nfgan.graph {meta.get('nfgan.graph')!r}; "
                                  "write one with nfgan export --format onnx)")
        rule = meta.get("nfgan.input_rule") or {}
        self.rule = InputRule.from_record(rule)
        self.kind = str(meta.get("nfgan.kind"))
        model = meta.get("nfgan.model") if isinstance(meta.get("nfgan.model"), dict) else {}
        recorded = meta.get("nfgan.info") if isinstance(meta.get("nfgan.info"), dict) else {}
        self.info = {**recorded, "kind": self.kind,
                     "model": {**model, "image_size": int(meta.get("nfgan.image_size", 64))},
                     "step": meta.get("nfgan.step"), "source": source, "backend": "onnxruntime",
                     "onnx_metadata": meta}
        self.net = OrtNet(session)
        shape = session.get_inputs()[0].shape
        self._in_channels = int(shape[1]) if len(shape) == 4 and isinstance(shape[1], int) else self.rule.channels
        self._halves = {"enc": encoder, "dec": decoder}
        self.threads = threads
        self.nets = _Halves(self)

    @property
    def in_channels(self) -> int:
        return self._in_channels

    def to(self, device) -> "OnnxGenerator":
        if torch.device(device).type != "cpu":
            raise CheckpointError("the onnxruntime backend runs on the CPU (device cpu)")
        return self

    def eval(self) -> "OnnxGenerator":
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _half(self, name: str) -> OrtNet:
        if self.kind != "nfgan":
            raise CheckpointError(f"{self.info['source']}: a {self.kind} model has no latent code; encode/decode "
                                  "need an NFGAN, e.g. the shipped nfgan_london64")
        half = self._halves[name]
        if half is None:
            raise CheckpointError(f"{self.info['source']}: the NFGAN's {'encoder' if name == 'enc' else 'decoder'} "
                                  "graph was not found next to it (nfgan export writes NAME_encoder.onnx and "
                                  "NAME_decoder.onnx)")
        if not isinstance(half, OrtNet):
            half = self._halves[name] = OrtNet(make_session(half, self.threads))
        return half

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self._half("enc")(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self._half("dec")(z)

    def normalize(self, images_u8: np.ndarray, poses: Sequence[str] | None = None, flipped: Sequence | None = None,
                  batch_size: int = 64, progress: bool = False, desc: str = "normalize",
                  landmarks: np.ndarray | None = None, identity_pull: bool = True) -> np.ndarray:
        """As ``Generator.normalize``: uint8 ``N x S x S`` -> uint8 ``N x S x S``, the input rule in numpy, the
        network in onnxruntime, the same [-1, 1] conversions (``nfgan.pixels``). The graph is the plain generator:
        a model's identity pull (``nfgan.inference.identity_pull``) is not run, whatever ``identity_pull`` says."""
        from tqdm import tqdm

        from nfgan.pixels import to_uint8, to_unit_batch

        x = self.generator_inputs(images_u8, poses, flipped, landmarks)
        out = np.empty((len(x),) + x.shape[-2:], dtype=np.uint8)
        for s in tqdm(range(0, len(x), batch_size), desc=desc, unit="batch", disable=not progress, leave=False):
            unit = to_unit_batch(x[s:s + batch_size]).numpy()
            out[s:s + batch_size] = to_uint8(torch.from_numpy(self.net.run(unit)))
        return out


class _Halves:
    """``nets["enc"]`` / ``nets["dec"]`` of an ONNX NFGAN (what ``Normalizer.encoder`` / ``decoder`` return)."""

    def __init__(self, gen: OnnxGenerator):
        self.gen = gen

    def __getitem__(self, name: str) -> OrtNet:
        if name not in ("enc", "dec"):
            raise KeyError(name)
        return self.gen._half(name)

    def __contains__(self, name: str) -> bool:
        return self.gen.kind == "nfgan" and name in ("enc", "dec")


def load_onnx_generator(path: str | Path | None = None, threads: int | None = None) -> OnnxGenerator:
    """An :class:`OnnxGenerator` from an ``.onnx`` file written by ``nfgan export`` (an NFGAN's encoder and
    decoder graphs are found next to it by the names its metadata records), or from anything ``load_model``
    reads (a shipped model's name too), exported to ONNX in memory first; ``None`` = the shipped default
    normaliser."""
    require_onnxruntime()
    path = shipped_model(path) if path is not None else default_model_path()
    if not path.exists():
        raise CheckpointError(f"{path}: no such ONNX file, run folder, checkpoint or model file")
    if path.suffix.lower() == ".onnx" and path.is_file():
        try:
            session = make_session(path, threads)
        except Exception as e:   # onnxruntime raises its own exception types for unreadable files
            raise CheckpointError(f"{path}: onnxruntime cannot load it ({type(e).__name__}: {e})") from None
        meta = session_metadata(session)
        halves = {}
        for key, name in (("enc", meta.get("nfgan.encoder_file")), ("dec", meta.get("nfgan.decoder_file"))):
            sibling = path.parent / str(name) if name else None
            halves[key] = sibling if sibling is not None and sibling.is_file() else None
        return OnnxGenerator(session, str(path), halves["enc"], halves["dec"], threads)
    graphs = list(generator_graphs(load_model(path), "model").values())
    enc, dec = graphs[1:] if len(graphs) == 3 else (None, None)
    return OnnxGenerator(make_session(graphs[0], threads), str(path), enc, dec, threads)
