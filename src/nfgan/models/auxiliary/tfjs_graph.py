"""Reader of TensorFlow.js model files and a PyTorch executor for the graphs they describe.

Two on-disk formats are read:

* **weights manifests** (``*-weights_manifest.json`` of face-api, and the ``weightsManifest`` key of a graph
  model's ``model.json``): a list of groups, each ``{"paths": [shard files], "weights": [{"name", "shape",
  "dtype", "quantization"?}]}``. The shards of one group are concatenated and the weights follow each other
  in that byte stream in list order, little-endian. A quantised weight stores ``quantization.dtype`` values:
  ``uint8``/``uint16`` are affine (``value = q * scale + min``), ``float16`` is IEEE half precision; the
  weight's own ``dtype`` is the type after dequantisation (always float32 here).
* **graph models** (``"format": "graph-model"``): ``modelTopology.node`` is a frozen TensorFlow GraphDef as
  JSON - every node has ``name``, ``op``, ``input`` (``"node"``, ``"node:k"`` for its k-th output, ``"^node"``
  for a control dependency) and ``attr`` (TF AttrValue JSON: ``s`` strings are base64, ints are decimal
  strings). ``Const`` nodes take their value from the weight of the same name.

:class:`TfjsGraph` runs such a graph with PyTorch, keeping TensorFlow's NHWC layout between nodes and its
exact ``SAME`` padding (``pad_total = max((ceil(n/s) - 1) * s + (k - 1) * d + 1 - n, 0)``, the smaller half
before). Only the ops met in the models nfgan ports are implemented; an unknown op fails loudly with its name
when the graph is built, never silently at run time.

A graph plus its weights can be stored in one safetensors file (:func:`save_graph` / :func:`load_graph`):
the tensors are the Const values, the topology and input/output names go into the file's metadata as JSON.
"""
from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F


class TfjsFormatError(ValueError):
    """A TF.js model file that cannot be read, named with the reason."""


# --------------------------------------------------------------------------------------------- weights

_STORED_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_,
                  "uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}


def decode_weights(manifest: Sequence[Mapping], read_file: Callable[[str], bytes],
                   source: str = "weights manifest") -> dict[str, np.ndarray]:
    """Decode every weight listed in a TF.js weights manifest into a float32 / int32 / bool numpy array.

    ``read_file(path)`` returns the bytes of one shard named in ``paths`` (relative to the manifest).
    """
    out: dict[str, np.ndarray] = {}
    for gi, group in enumerate(manifest):
        try:
            blob = b"".join(read_file(p) for p in group["paths"])
            entries = group["weights"]
        except KeyError as exc:
            raise TfjsFormatError(f"{source}: group {gi} lacks {exc}") from None
        offset = 0
        for w in entries:
            name, shape, dtype = w["name"], [int(s) for s in w["shape"]], w["dtype"]
            quant = w.get("quantization")
            stored = quant["dtype"] if quant else dtype
            if stored not in _STORED_DTYPES:
                raise TfjsFormatError(f"{source}: weight {name!r} has unsupported dtype {stored!r}")
            count = int(np.prod(shape)) if shape else 1
            nbytes = count * np.dtype(_STORED_DTYPES[stored]).itemsize
            if offset + nbytes > len(blob):
                raise TfjsFormatError(f"{source}: shards of group {gi} end before weight {name!r} "
                                      f"({len(blob)} bytes, need {offset + nbytes})")
            raw = np.frombuffer(blob, dtype=np.dtype(_STORED_DTYPES[stored]).newbyteorder("<"),
                                count=count, offset=offset)
            offset += nbytes
            if quant and stored in ("uint8", "uint16"):
                if "scale" not in quant or "min" not in quant:
                    raise TfjsFormatError(f"{source}: weight {name!r}: affine quantisation without scale/min")
                # float64 arithmetic, rounded once to float32, as tfjs does in its dequantiser
                value = (raw.astype(np.float64) * float(quant["scale"]) + float(quant["min"]))
                value = value.astype(np.float32)
            elif quant and stored == "float16":
                value = raw.astype(np.float32)
            else:
                value = raw.copy()
            if dtype == "float32":
                value = value.astype(np.float32, copy=False)
            out[name] = value.reshape(shape)
        if offset != len(blob):
            raise TfjsFormatError(f"{source}: group {gi} has {len(blob) - offset} bytes after its last weight")
    return out


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TfjsFormatError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise TfjsFormatError(f"{path}: not valid JSON ({exc})") from None


def _read_shard(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TfjsFormatError(f"{path}: weight shard not found") from None


# --------------------------------------------------------------------------------------------- attributes

def _attr(node: Mapping, key: str, default=None):
    """Decode one TF AttrValue (JSON form) of a node into a Python value."""
    a = node.get("attr", {}).get(key)
    if a is None:
        return default
    if "s" in a:
        return base64.b64decode(a["s"]).decode("utf-8")
    if "i" in a:
        return int(a["i"])
    if "f" in a:
        return float(a["f"])
    if "b" in a:
        return bool(a["b"])
    if "type" in a:
        return a["type"]
    if "list" in a:
        lst = a["list"]
        if "s" in lst:
            return [base64.b64decode(s).decode("utf-8") for s in lst["s"]]
        if "i" in lst:
            return [int(i) for i in lst["i"]]
        if "f" in lst:
            return [float(f) for f in lst["f"]]
        return []
    if "shape" in a:
        return [int(d.get("size", -1)) for d in a["shape"].get("dim", [])]
    return default


# --------------------------------------------------------------------------------------------- NHWC ops

def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's ``SAME`` padding of one spatial axis: (before, after); the extra pixel goes after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _spatial_pads(x_nchw: torch.Tensor, kh: int, kw: int, strides, dilations, padding: str,
                  explicit: Sequence[int] = ()) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) padding for an NCHW tensor, TF semantics."""
    if padding == "VALID":
        return 0, 0, 0, 0
    if padding == "SAME":
        t, b = same_padding(x_nchw.shape[2], kh, strides[0], dilations[0])
        l, r = same_padding(x_nchw.shape[3], kw, strides[1], dilations[1])
        return l, r, t, b
    if padding == "EXPLICIT":  # NHWC pairs: [0,0, top,bottom, left,right, 0,0]
        return explicit[4], explicit[5], explicit[2], explicit[3]
    raise TfjsFormatError(f"unsupported padding {padding!r}")


def conv2d_nhwc(x: torch.Tensor, filt: torch.Tensor, strides=(1, 1), padding: str = "SAME",
                dilations=(1, 1), explicit: Sequence[int] = ()) -> torch.Tensor:
    """``tf.nn.conv2d`` with an HWIO filter on an NHWC tensor."""
    xc = x.permute(0, 3, 1, 2)
    w = filt.permute(3, 2, 0, 1)  # HWIO -> OIHW
    pads = _spatial_pads(xc, w.shape[2], w.shape[3], strides, dilations, padding, explicit)
    if any(pads):
        xc = F.pad(xc, pads)
    y = F.conv2d(xc, w, stride=tuple(strides), dilation=tuple(dilations))
    return y.permute(0, 2, 3, 1)


def depthwise_conv2d_nhwc(x: torch.Tensor, filt: torch.Tensor, strides=(1, 1), padding: str = "SAME",
                          dilations=(1, 1), explicit: Sequence[int] = ()) -> torch.Tensor:
    """``tf.nn.depthwise_conv2d_native`` with an ``H x W x C x M`` filter; output channel c*M + m."""
    kh, kw, c, m = filt.shape
    xc = x.permute(0, 3, 1, 2)
    w = filt.permute(2, 3, 0, 1).reshape(c * m, 1, kh, kw)
    pads = _spatial_pads(xc, kh, kw, strides, dilations, padding, explicit)
    if any(pads):
        xc = F.pad(xc, pads)
    y = F.conv2d(xc, w, stride=tuple(strides), dilation=tuple(dilations), groups=c)
    return y.permute(0, 2, 3, 1)


def pool_nhwc(x: torch.Tensor, kind: str, ksize, strides, padding: str) -> torch.Tensor:
    """``MaxPool`` / ``AvgPool``; with ``SAME`` the average counts only real (unpadded) pixels, as TF."""
    xc = x.permute(0, 3, 1, 2)
    pads = _spatial_pads(xc, ksize[0], ksize[1], strides, (1, 1), padding)
    if kind == "max":
        if any(pads):
            xc = F.pad(xc, pads, value=float("-inf"))
        y = F.max_pool2d(xc, tuple(ksize), tuple(strides))
    else:
        if any(pads):
            ones = F.pad(torch.ones_like(xc[:1, :1]), pads)
            y = F.avg_pool2d(F.pad(xc, pads), tuple(ksize), tuple(strides)) / F.avg_pool2d(
                ones, tuple(ksize), tuple(strides))
        else:
            y = F.avg_pool2d(xc, tuple(ksize), tuple(strides))
    return y.permute(0, 2, 3, 1)


def resize_bilinear_nhwc(x: torch.Tensor, size: Sequence[int], align_corners: bool = False,
                         half_pixel_centers: bool = False) -> torch.Tensor:
    """``tf.image.resize_bilinear`` (ResizeBilinear op) with both of its legacy flags, on NHWC floats."""
    n, h, w, c = x.shape
    oh, ow = int(size[0]), int(size[1])

    def axis(n_in: int, n_out: int):
        if align_corners and n_out > 1:
            scale = (n_in - 1) / (n_out - 1)
        else:
            scale = n_in / n_out
        dst = torch.arange(n_out, dtype=torch.float64, device=x.device)
        src = (dst + 0.5) * scale - 0.5 if half_pixel_centers else dst * scale
        if half_pixel_centers:
            src = src.clamp(min=0.0)
        lo = src.floor().clamp(max=n_in - 1)
        frac = (src - lo).to(x.dtype)
        lo = lo.long()
        hi = (lo + 1).clamp(max=n_in - 1)
        return lo, hi, frac

    y0, y1, fy = axis(h, oh)
    x0, x1, fx = axis(w, ow)
    top = x[:, y0] + (x[:, y1] - x[:, y0]) * fy.view(1, oh, 1, 1)
    return top[:, :, x0] + (top[:, :, x1] - top[:, :, x0]) * fx.view(1, 1, ow, 1)


def _activation(y: torch.Tensor, name: str, args: list[torch.Tensor], node: Mapping) -> torch.Tensor:
    if name == "Relu":
        return torch.relu(y)
    if name == "Relu6":
        return y.clamp(0.0, 6.0)
    if name == "Prelu":
        return torch.where(y >= 0, y, y * args[0])
    if name == "LeakyRelu":
        alpha = _attr(node, "leakyrelu_alpha", 0.2)
        return torch.where(y >= 0, y, y * alpha)
    if name == "Sigmoid":
        return torch.sigmoid(y)
    if name == "Elu":
        return F.elu(y)
    raise TfjsFormatError(f"node {node['name']!r}: unsupported fused activation {name!r}")


def _apply_fused(y: torch.Tensor, node: Mapping, args: list[torch.Tensor]) -> torch.Tensor:
    """Apply a ``_FusedConv2D`` / ``_FusedMatMul`` tail: ``BiasAdd`` then at most one activation."""
    ops = _attr(node, "fused_ops", [])
    rest = list(args)
    for op in ops:
        if op == "BiasAdd":
            y = y + rest.pop(0)
        else:
            y = _activation(y, op, rest, node)
    return y


def _reduce_axes(axes: torch.Tensor, rank: int) -> list[int]:
    return sorted({int(a) % rank for a in axes.reshape(-1).tolist()})


def _op_conv(node, a):
    strides, dil = _attr(node, "strides", [1, 1, 1, 1]), _attr(node, "dilations", [1, 1, 1, 1])
    return conv2d_nhwc(a[0], a[1], strides[1:3], _attr(node, "padding"), dil[1:3],
                       _attr(node, "explicit_paddings", []))


def _op_depthwise(node, a):
    strides, dil = _attr(node, "strides", [1, 1, 1, 1]), _attr(node, "dilations", [1, 1, 1, 1])
    return depthwise_conv2d_nhwc(a[0], a[1], strides[1:3], _attr(node, "padding"), dil[1:3],
                                 _attr(node, "explicit_paddings", []))


def _op_matmul(node, a):
    x, w = a[0], a[1]
    if _attr(node, "transpose_a", False):
        x = x.transpose(-1, -2)
    if _attr(node, "transpose_b", False):
        w = w.transpose(-1, -2)
    return x @ w


def _op_pool(kind):
    def run(node, a):
        return pool_nhwc(a[0], kind, _attr(node, "ksize")[1:3], _attr(node, "strides")[1:3],
                         _attr(node, "padding"))
    return run


def _op_reduce(fn):
    def run(node, a):
        axes = _reduce_axes(a[1], a[0].dim())
        keep = bool(_attr(node, "keep_dims", False))
        return fn(a[0], dim=axes, keepdim=keep) if axes else a[0]
    return run


def _op_squeeze(node, a):
    dims = _attr(node, "squeeze_dims", []) or [i for i, s in enumerate(a[0].shape) if s == 1]
    x = a[0]
    for d in sorted((d % x.dim() for d in dims), reverse=True):
        x = x.squeeze(d)
    return x


def _op_pad(node, a):
    pads = a[1].reshape(-1, 2).tolist()  # [[before, after] per axis]
    flat: list[int] = []
    for before, after in reversed(pads):
        flat += [int(before), int(after)]
    value = float(a[2]) if len(a) > 2 else 0.0
    return F.pad(a[0], flat, value=value)


def _op_concat(node, a):
    n = _attr(node, "N", len(a) - 1)
    return torch.cat(a[:n], dim=int(a[n]) % a[0].dim())


def _op_resize(node, a):
    return resize_bilinear_nhwc(a[0], a[1].tolist(), _attr(node, "align_corners", False),
                                _attr(node, "half_pixel_centers", False))


def _op_fused_batchnorm(node, a):
    x, scale, offset, mean, var = a[:5]
    eps = _attr(node, "epsilon", 1e-3)
    return (x - mean) * (scale / torch.sqrt(var + eps)) + offset


OPS: dict[str, Callable] = {
    "Identity": lambda n, a: a[0],
    "Conv2D": _op_conv,
    "DepthwiseConv2dNative": _op_depthwise,
    "_FusedConv2D": lambda n, a: _apply_fused(_op_conv(n, a), n, a[2:]),
    "FusedDepthwiseConv2dNative": lambda n, a: _apply_fused(_op_depthwise(n, a), n, a[2:]),
    "MatMul": _op_matmul,
    "_FusedMatMul": lambda n, a: _apply_fused(_op_matmul(n, a), n, a[2:]),
    "BiasAdd": lambda n, a: a[0] + a[1],
    "Add": lambda n, a: a[0] + a[1],
    "AddV2": lambda n, a: a[0] + a[1],
    "AddN": lambda n, a: torch.stack(torch.broadcast_tensors(*a)).sum(0),
    "Sub": lambda n, a: a[0] - a[1],
    "Mul": lambda n, a: a[0] * a[1],
    "RealDiv": lambda n, a: a[0] / a[1],
    "Maximum": lambda n, a: torch.maximum(a[0], a[1].to(a[0].dtype)),
    "Minimum": lambda n, a: torch.minimum(a[0], a[1].to(a[0].dtype)),
    "Neg": lambda n, a: -a[0],
    "Abs": lambda n, a: a[0].abs(),
    "Square": lambda n, a: a[0] * a[0],
    "Sqrt": lambda n, a: torch.sqrt(a[0]),
    "Rsqrt": lambda n, a: torch.rsqrt(a[0]),
    "Exp": lambda n, a: torch.exp(a[0]),
    "Relu": lambda n, a: torch.relu(a[0]),
    "Relu6": lambda n, a: a[0].clamp(0.0, 6.0),
    "Prelu": lambda n, a: torch.where(a[0] >= 0, a[0], a[0] * a[1]),
    "LeakyRelu": lambda n, a: torch.where(a[0] >= 0, a[0], a[0] * _attr(n, "alpha", 0.2)),
    "Sigmoid": lambda n, a: torch.sigmoid(a[0]),
    "Tanh": lambda n, a: torch.tanh(a[0]),
    "Softmax": lambda n, a: torch.softmax(a[0], dim=-1),
    "MaxPool": _op_pool("max"),
    "AvgPool": _op_pool("avg"),
    "Mean": _op_reduce(torch.mean),
    "Sum": _op_reduce(torch.sum),
    "Max": _op_reduce(lambda x, dim, keepdim: torch.amax(x, dim=dim, keepdim=keepdim)),
    "Reshape": lambda n, a: a[0].reshape([int(s) for s in a[1].tolist()]),
    "Squeeze": _op_squeeze,
    "ExpandDims": lambda n, a: a[0].unsqueeze(int(a[1])),
    "Transpose": lambda n, a: a[0].permute([int(p) for p in a[1].tolist()]),
    "Pad": _op_pad,
    "PadV2": _op_pad,
    "ConcatV2": _op_concat,
    "ResizeBilinear": _op_resize,
    "FusedBatchNorm": _op_fused_batchnorm,
    "FusedBatchNormV3": _op_fused_batchnorm,
}


# --------------------------------------------------------------------------------------------- graph

def _split_ref(ref: str) -> tuple[str, int] | None:
    """'node' -> (node, 0); 'node:2' -> (node, 2); '^node' (control dependency) -> None."""
    if ref.startswith("^"):
        return None
    name, sep, idx = ref.rpartition(":")
    if sep and idx.isdigit():
        return name, int(idx)
    return ref, 0


class TfjsGraph(torch.nn.Module):
    """A frozen TF.js graph model executed with PyTorch ops (NHWC, float32, no gradients needed).

    ``nodes`` is the GraphDef node list; ``consts`` holds the value of every ``Const`` node by name. Calling
    the module runs only the nodes needed for ``outputs`` (default: the graph's signature outputs, else its
    sink nodes) in topological order.
    """

    def __init__(self, nodes: Sequence[Mapping], consts: Mapping[str, np.ndarray | torch.Tensor],
                 inputs: Sequence[str] | None = None, outputs: Sequence[str] | None = None, name: str = "graph"):
        super().__init__()
        self.graph_name = name
        self.nodes = {n["name"]: dict(n) for n in nodes}
        unknown = sorted({n["op"] for n in nodes if n["op"] not in OPS and n["op"] not in ("Const", "Placeholder")})
        if unknown:
            raise TfjsFormatError(f"{name}: ops not supported by nfgan.models.auxiliary.tfjs_graph: {unknown}")
        missing = [n["name"] for n in nodes if n["op"] == "Const" and n["name"] not in consts]
        if missing:
            raise TfjsFormatError(f"{name}: Const nodes without a weight: {missing[:5]}")
        # Const tensors as buffers (state_dict-able); names get '.' replaced since torch forbids it there
        self._const_keys: dict[str, str] = {}
        for i, (cname, value) in enumerate(consts.items()):
            key = f"c{i}"
            self._const_keys[cname] = key
            t = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
            if t.dtype in (torch.float16, torch.bfloat16, torch.float64):  # stored compactly, computed in fp32
                t = t.to(torch.float32)
            self.register_buffer(key, t, persistent=False)
        self.input_names = list(inputs) if inputs else [n["name"] for n in nodes if n["op"] == "Placeholder"]
        if outputs:
            self.output_names = list(outputs)
        else:
            used = {r[0] for n in nodes for ref in n.get("input", []) if (r := _split_ref(ref))}
            self.output_names = [n["name"] for n in nodes if n["name"] not in used and n["op"] != "Const"]
        for o in self.output_names:
            if _split_ref(o)[0] not in self.nodes:
                raise TfjsFormatError(f"{name}: output {o!r} is not a node of the graph")

    # -- construction ---------------------------------------------------------------------------------
    @classmethod
    def from_model_json(cls, path: str | Path) -> "TfjsGraph":
        """Read a TF.js ``graph-model`` ``model.json`` and the weight shards beside it."""
        path = Path(path)
        spec = _read_json(path)
        topo = spec.get("modelTopology") if isinstance(spec, dict) else None
        if not topo or "node" not in topo:
            raise TfjsFormatError(f"{path}: no modelTopology.node list - not a TF.js graph model "
                                  f"(format={spec.get('format') if isinstance(spec, dict) else None!r})")
        if topo.get("library", {}).get("function"):
            raise TfjsFormatError(f"{path}: graph uses functions (control flow), which this reader lacks")
        weights = decode_weights(spec.get("weightsManifest", []), lambda p: _read_shard(path.parent / p),
                                 source=str(path))
        inputs, outputs = _signature_names(spec)
        return cls(topo["node"], weights, inputs, outputs, name=path.stem)

    def topology(self) -> list[dict]:
        return list(self.nodes.values())

    def const(self, name: str) -> torch.Tensor:
        return getattr(self, self._const_keys[name])

    def consts(self) -> dict[str, torch.Tensor]:
        return {n: self.const(n) for n in self._const_keys}

    # -- execution ------------------------------------------------------------------------------------
    def _order(self, targets: Iterable[str]) -> list[str]:
        order, state = [], {}
        for t in targets:
            stack = [(t, False)]
            while stack:
                name, done = stack.pop()
                if done:
                    if state.get(name) != 2:
                        state[name] = 2
                        order.append(name)
                    continue
                if state.get(name):  # finished, or expanded with its done-marker below on the stack
                    continue
                if name not in self.nodes:
                    raise TfjsFormatError(f"{self.graph_name}: unknown node {name!r}")
                state[name] = 1
                stack.append((name, True))
                for ref in self.nodes[name].get("input", []):
                    r = _split_ref(ref)
                    if r and state.get(r[0]) != 2:
                        stack.append((r[0], False))
        return order

    def run(self, feeds: Mapping[str, torch.Tensor] | torch.Tensor,
            outputs: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Evaluate ``outputs`` (names as in the graph, ``node`` or ``node:0``) given Placeholder values.

        Differentiable with respect to the fed tensors (wrap in ``torch.no_grad()`` for inference).
        """
        if isinstance(feeds, torch.Tensor):
            if len(self.input_names) != 1:
                raise ValueError(f"{self.graph_name} has inputs {self.input_names}; pass a dict")
            feeds = {self.input_names[0]: feeds}
        feeds = {_split_ref(k)[0]: v for k, v in feeds.items()}
        outputs = list(outputs) if outputs else self.output_names
        values: dict[str, torch.Tensor] = {}
        for name in self._order(_split_ref(o)[0] for o in outputs):
            node = self.nodes[name]
            op = node["op"]
            if op == "Placeholder":
                if name not in feeds:
                    raise ValueError(f"{self.graph_name}: no value fed for input {name!r}")
                values[name] = feeds[name].to(torch.float32)
                continue
            if op == "Const":
                values[name] = self.const(name)
                continue
            args = [values[r[0]] for ref in node.get("input", []) if (r := _split_ref(ref))]
            try:
                values[name] = OPS[op](node, args)
            except Exception as exc:  # name the node: a bare shape error from deep in a graph is useless
                shapes = [tuple(a.shape) for a in args]
                raise RuntimeError(f"{self.graph_name}: node {name!r} ({op}) failed on inputs {shapes}: {exc}") from exc
        return {o: values[_split_ref(o)[0]] for o in outputs}

    def forward(self, x: torch.Tensor, outputs: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        return self.run(x, outputs)


def _signature_names(spec: Mapping) -> tuple[list[str] | None, list[str] | None]:
    sig = spec.get("signature") or spec.get("userDefinedMetadata", {}).get("signature") or {}
    ins = [v.get("name", k) for k, v in sig.get("inputs", {}).items()] or None
    outs = [v.get("name", k) for k, v in sig.get("outputs", {}).items()] or None
    return ins, outs


# --------------------------------------------------------------------------------------------- storage

def save_graph(path: str | Path, graph: TfjsGraph, metadata: Mapping[str, str] | None = None,
               tensors: Mapping[str, torch.Tensor] | None = None) -> None:
    """Store a graph as one safetensors file: Const tensors + topology/IO names (JSON) in the metadata.

    ``tensors`` overrides the stored Const values (e.g. the original float16 weights instead of the
    float32 copies the graph computes with); it must hold every Const of the graph.
    """
    from nfgan.atomic import save_safetensors

    topo = [{k: v for k, v in n.items() if k != "attr" or v} for n in graph.topology()]
    meta = {"format": "nfgan-tfjs-graph/1", "topology": json.dumps(topo, separators=(",", ":")),
            "inputs": json.dumps(graph.input_names), "outputs": json.dumps(graph.output_names),
            "name": graph.graph_name}
    meta.update(metadata or {})
    values = dict(tensors) if tensors is not None else graph.consts()
    missing = [n for n in graph.consts() if n not in values]
    if missing:
        raise ValueError(f"save_graph: tensors lack Const values {missing[:5]}")
    save_safetensors(path, values, meta)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors file (without loading its tensors)."""
    path = Path(path)
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if n <= 0 or n > 100_000_000:
            raise TfjsFormatError(f"{path}: not a safetensors file")
        header = json.loads(f.read(n))
    return header.get("__metadata__", {}) or {}


def load_graph(path: str | Path) -> TfjsGraph:
    """Load a graph written by :func:`save_graph` (no code is unpickled: tensors + JSON only)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: converted weights not found (run tools/convert_tfjs_models.py)")
    meta = read_metadata(path)
    if meta.get("format") != "nfgan-tfjs-graph/1":
        raise TfjsFormatError(f"{path}: not an nfgan TF.js graph file (format={meta.get('format')!r})")
    tensors = load_file(str(path))
    return TfjsGraph(json.loads(meta["topology"]), tensors, json.loads(meta["inputs"]),
                     json.loads(meta["outputs"]), name=meta.get("name", path.stem))
