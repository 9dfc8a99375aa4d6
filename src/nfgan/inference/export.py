"""``nfgan export --format onnx``: the networks of the shipped (or given) models as ONNX graphs (docs/deploy.md).

    nfgan export --format onnx -o onnx/                      # the default normaliser and the NFGAN
    nfgan export --format onnx -o onnx/ --model cc_by        # the model trained on CC BY data only
    nfgan export --format onnx -o onnx/ --fer-model models/ck_2b/fer_model.safetensors
    nfgan export --format onnx -o onnx/ --model runs/my_run --no-check

What is written (one file per graph, named after the model file; batch dimension ``batch`` is dynamic):

* a generator (``Generator``: the pix2pix U-Net or NFGAN's Enc -> Dec): ``NAME.onnx``, input ``faces`` float32
  ``N x 1 x S x S`` in [-1, 1] (``uint8 / 127.5 - 1``, ``nfgan.pixels.to_unit``), output ``normalized``, same
  shape, in [-1, 1] (to uint8: ``round((clamp(y, -1, 1) + 1) * 127.5)``, ``nfgan.pixels.to_uint8``);
* an NFGAN also as its two halves: ``NAME_encoder.onnx`` (``faces`` -> ``code`` ``N x latent_dim``) and
  ``NAME_decoder.onnx`` (``code`` -> ``normalized``), for ``encode`` / ``decode`` / latent traversal;
* a FER model (``--fer-model``): ``NAME.onnx``, input ``crops`` float32 ``N x 1 x C x C`` (``C`` = the model's
  ``crop``, 60): crops of FER-normalised faces (``nfgan.data.photometric.fer_normalize`` of the uint8 ``S x S``
  face: histogram equalisation, plane removal, zero mean / unit variance), the centre crop, or with ``tta`` the
  ten crops of ``five_crops(face, C, flips=True)`` whose softmax outputs are averaged per face; outputs
  ``probabilities`` (``N x classes``, softmax) and ``embedding`` (``N x embed_dim``, L2-normalised).

The graphs are the networks only. A model's identity pull of turned outputs (``nfgan.inference.identity_pull``,
the default's: gradient steps through the generator and dlib's network) is not in its graph, which gives the plain
generator's outputs (``identity_pull=False``); the file names it in ``nfgan.identity_pull_not_in_graph``. The step
before a generator (the model's input rule,
``nfgan.data.generator_input.InputRule``: mirroring of faces turned to the left, landmark frontalisation of
turned faces) and the FER face normalisation stay in nfgan (numpy), as ``nfgan normalize --backend
onnxruntime`` runs them; each file's ``metadata_props`` record what they need: ``nfgan.kind``,
``nfgan.graph``, ``nfgan.input_rule`` (JSON), ``nfgan.image_size``, ``nfgan.model`` (hyper-parameters), the
input / output / pre-step descriptions, ``nfgan.info`` (all the model file records: licence, training
data, identity thresholds, training config), and for FER ``nfgan.classes``, ``nfgan.crop``, ``nfgan.tta``,
``nfgan.framing``.

Exporter: the TorchScript-based ``torch.onnx.export(..., dynamo=False)`` (opset 17). The torch.export-based
exporter (torch's default since 2.9) needs the ``onnxscript`` package; the TorchScript one needs nothing
beyond torch, traces these plain convolutional nets exactly, folds eval-mode BatchNorm into constants, and
its output matches torch to ~3e-6 (``--check``, on by default, runs every written graph in onnxruntime on a
batch of another size than the traced one and compares it with torch).
"""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nfgan.inference.generator import Generator, split_weights

#: ``nfgan.format`` of every file written here
ONNX_FORMAT = "nfgan-onnx/1"
#: ONNX operator set of the written graphs (onnxruntime >= 1.14 runs it)
OPSET = 17
#: largest |onnxruntime - torch| the export check accepts (float outputs; generators are in [-1, 1])
CHECK_TOL = 1e-4
GRAPHS = ("normalizer", "encoder", "decoder", "fer")

PRE_STEP = ("nfgan.data.generator_input.InputRule(flip_left_poses, frontalize, fill, neutralize, shape, "
            "mode, threshold, frontal, frontal_map).apply(faces_u8, "
            "poses, flipped, landmarks): mirror faces whose occluded side is on the left (flip_left_poses), then warp "
            "turned faces (3/4, profile) onto the frontal landmark layout with their 68 landmarks (frontalize), or "
            "onto a prediction of their own frontal landmarks (frontalize_shape: own, nfgan.data.frontal_shape), "
            "their far half the mirror image of the near half (fill: mirror) or as warped (fill: none), or both as "
            "two channels N x 2 x S x S (fill: both; faces not frontalised repeat in the second channel), and the "
            "other faces onto their predicted neutral landmarks (neutralize: nfgan.data.neutral_shape), or "
            "only re-framed as their predicted neutral face would be framed (neutralize_mode: frame), or both "
            "(neutralize_mode: warp_frame), each face only where its framing is off by more than the threshold "
            "(neutralize_threshold, nfgan.data.neutral_shape.strength); "
            "then x = uint8 / 127.5 - 1")
FACES_IN = "faces: float32 N x {c} x {s} x {s}, gray in [-1, 1] (uint8 / 127.5 - 1), after the input rule{two}"
#: what :data:`FACES_IN` adds for a two-channel input rule
TWO_CHANNELS = " (channel 0 mirror-filled, channel 1 as warped: fill both)"
FACES_OUT = ("normalized: float32 N x 1 x {s} x {s} in [-1, 1]; uint8 = round((clamp(y, -1, 1) + 1) * 127.5); "
             "never mirrored")



class ExportError(ValueError):
    """A model that cannot be exported, or a missing package (the message says which)."""


def require_onnx():
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install 'nfgan[onnx]' "
                          "(onnx and onnxruntime)") from None
    return onnx


class OnnxUnavailable(ImportError):
    """onnxruntime (or onnx, for an in-memory export) is not installed."""


def require_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise OnnxUnavailable("the onnxruntime backend needs the onnxruntime package: pip install 'nfgan[onnx]'") \
            from None
    return onnxruntime


def make_session(model: str | Path | bytes, threads: int | None = None):
    """An onnxruntime CPU session for an ONNX file or model bytes; ``threads``: intra-op threads (default:
    onnxruntime's, one per physical core)."""
    ort = require_onnxruntime()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])


def session_metadata(session) -> dict:
    """The ``nfgan.*`` metadata of a session's model, JSON values decoded (text kept as text)."""
    out = {}
    for key, value in session.get_modelmeta().custom_metadata_map.items():
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def onnx_bytes(module: nn.Module, example: torch.Tensor, inputs: list[str], outputs: list[str],
               metadata: dict, opset: int = OPSET, doc: str = "") -> bytes:
    """``module`` (eval mode) traced on ``example`` and written as an ONNX model with a dynamic batch dimension
    and ``metadata`` (values: text, or JSON for anything else) in its ``metadata_props``."""
    onnx = require_onnx()
    module.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the TorchScript exporter's deprecation notice; tracer notes on shape checks
        torch.onnx.export(module, (example,), buf, dynamo=False, export_params=True, opset_version=opset,
                          do_constant_folding=True, input_names=inputs, output_names=outputs,
                          dynamic_axes={name: {0: "batch"} for name in inputs + outputs})
    model = onnx.load_from_string(buf.getvalue())
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    model.producer_name, model.doc_string = "nfgan", doc
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _common(kind: str, graph: str, source, size: int) -> dict:
    from nfgan import __version__

    return {"nfgan.format": ONNX_FORMAT, "nfgan.kind": kind, "nfgan.graph": graph, "nfgan.image_size": size,
            "nfgan.source": str(source), "nfgan.version": __version__}


def generator_graphs(g: Generator, stem: str = "model", opset: int = OPSET) -> dict[str, bytes]:
    """The ONNX graphs of a generator, ``{file name: model bytes}``: ``STEM.onnx`` (the whole generator) and,
    for an NFGAN, ``STEM_encoder.onnx`` and ``STEM_decoder.onnx``."""
    s = g.size
    rule = g.rule.as_dict()
    base = {"nfgan.input_rule": rule, "nfgan.model": g.info["model"], "nfgan.step": g.info.get("step"),
            "nfgan.pre_step": PRE_STEP,
            # everything else the model file records (licence, training data, identity thresholds, config); the
            # identity pull (a PyTorch step with gradients) is not in the graph, so it is named apart
            "nfgan.info": {k: v for k, v in g.info.items() if k not in ("source", "input_rule", "identity_pull")}}
    if g.pull is not None:
        base["nfgan.identity_pull_not_in_graph"] = g.pull.as_dict()
    c = g.rule.channels
    faces_in = FACES_IN.format(s=s, c=c, two=TWO_CHANNELS if c == 2 else "")
    x = torch.zeros(2, c, s, s)
    names = {"normalizer": f"{stem}.onnx"}
    if g.kind == "nfgan":
        names.update(encoder=f"{stem}_encoder.onnx", decoder=f"{stem}_decoder.onnx")
        base.update({"nfgan.encoder_file": names["encoder"], "nfgan.decoder_file": names["decoder"]})
    meta = {**_common(g.kind, "normalizer", g.info.get("source"), s), **base,
            "nfgan.input": faces_in, "nfgan.output": FACES_OUT.format(s=s)}
    doc = f"nfgan {g.kind} generator: {faces_in} -> {FACES_OUT.format(s=s)}"
    out = {names["normalizer"]: onnx_bytes(g, x, ["faces"], ["normalized"], meta, opset, doc)}
    if g.kind == "nfgan":
        enc, dec = g.nets["enc"], g.nets["dec"]
        with torch.no_grad():
            z = enc(x)
        latent = int(z.shape[1])
        code = f"code: float32 N x {latent}, NFGAN's latent code"
        meta_e = {**_common(g.kind, "encoder", g.info.get("source"), s), **base,
                  "nfgan.input": faces_in, "nfgan.output": code}
        meta_d = {**_common(g.kind, "decoder", g.info.get("source"), s), **base,
                  "nfgan.input": code, "nfgan.output": FACES_OUT.format(s=s)}
        out[names["encoder"]] = onnx_bytes(enc, x, ["faces"], ["code"], meta_e, opset, f"NFGAN encoder: -> {code}")
        out[names["decoder"]] = onnx_bytes(dec, z, ["code"], ["normalized"], meta_d, opset,
                                           f"NFGAN decoder: {code} -> {FACES_OUT.format(s=s)}")
    return out


def model_stem(path: Path) -> str:
    """The file-name stem of a model argument: a run folder's name or a file's stem, with ``_live`` / ``_ema``
    for ``PATH#live`` / ``PATH#ema``."""
    path, weights = split_weights(path)
    return (path.name if path.is_dir() else path.stem) + ("" if weights == "auto" else f"_{weights}")


def check_graph(model: bytes, module, example: torch.Tensor) -> float:
    """Largest |onnxruntime - torch| over the outputs of ``model`` on ``example``."""
    sess = make_session(model)
    got = sess.run(None, {sess.get_inputs()[0].name: example.numpy()})
    with torch.no_grad():
        want = module(example)
    want = want if isinstance(want, (tuple, list)) else (want,)
    return max(float(np.abs(a - b.numpy()).max()) for a, b in zip(got, want))


def _write(path: Path, data: bytes) -> None:
    from nfgan.atomic import write_bytes

    write_bytes(path, data)
