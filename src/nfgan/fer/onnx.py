"""A FER model as an ONNX graph (``nfgan export --fer-model``) and its onnxruntime classifier, with the pre-step
(FER normalisation and crops) in numpy. The graph machinery is ``nfgan.inference.export``'s."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nfgan.checkpoint import CheckpointError
from nfgan.inference.export import ONNX_FORMAT, OPSET, _common, make_session, onnx_bytes, session_metadata

FER_PRE = ("face_norm = nfgan.data.photometric.fer_normalize(face_u8) (histogram equalisation, plane removal, "
           "zero mean / unit variance) of the aligned uint8 {s} x {s} face; crops = center_crop(face_norm, {c}) "
           "(tta false) or five_crops(face_norm, {c}, flips=True) (tta true: 10 crops per face, the face's "
           "probabilities = the mean of its 10 softmax outputs)")


def resize_matrix(size: int, out: int) -> torch.Tensor:
    """``out x size`` matrix ``R`` with ``R @ x @ R.T`` = ``FERNet._resize``'s antialiased bilinear resize of a
    ``size x size`` image (separable, so one 1-D resize of each unit impulse gives its columns)."""
    from torch.nn import functional as F

    eye = torch.eye(size).reshape(size, 1, 1, size)
    rows = F.interpolate(eye, size=(1, out), mode="bilinear", align_corners=False, antialias=True)
    return rows.reshape(size, out).T.contiguous()


class _FERHead(nn.Module):
    """A ``FERNet`` as deployed: crops -> (softmax probabilities, embedding). ``exportable``: the trunk's input
    resize (``trunk_input``: antialiased bilinear, an operator ONNX export lacks) becomes two matrix products with
    a constant matrix, the same map (checked against torch at export)."""

    def __init__(self, net: nn.Module, exportable: bool = True):
        super().__init__()
        self.net = copy.deepcopy(net).cpu().eval()
        t, c = self.net.trunk_input, self.net.input_size
        if exportable and t and t != c:
            self.register_buffer("resize", resize_matrix(c, t))
            self.net._resize = self._matmul_resize   # an instance attribute: shadows FERNet._resize in this copy

    def _matmul_resize(self, x: torch.Tensor) -> torch.Tensor:
        return self.resize @ x @ self.resize.T

    def forward(self, x: torch.Tensor):
        logits, emb = self.net(x)
        return logits.softmax(1), emb


def fer_graph(clf, opset: int = OPSET) -> bytes:
    """The ONNX graph of a ``nfgan.fer.classifier.FERClassifier`` (crops -> probabilities, embedding)."""
    crop, s = int(clf.meta["crop"]), int(clf.image_size)
    m = clf.meta
    meta = {**_common("fer", "fer", clf.path, s), "nfgan.classes": clf.classes, "nfgan.crop": crop,
            "nfgan.tta": bool(m["tta"]), "nfgan.framing": clf.framing, "nfgan.variant": m.get("variant"),
            "nfgan.net": m["net"], "nfgan.pre_step": FER_PRE.format(s=s, c=crop),
            "nfgan.input": f"crops: float32 N x 1 x {crop} x {crop} of FER-normalised faces (nfgan.pre_step)",
            "nfgan.output": f"probabilities: float32 N x {len(clf.classes)} softmax over nfgan.classes; "
                            "embedding: float32 N x embed_dim, L2-normalised (the metric branch)"}
    head = _FERHead(clf.net)
    return onnx_bytes(head, torch.zeros(2, 1, crop, crop), ["crops"], ["probabilities", "embedding"], meta, opset,
                      f"nfgan FER net: crops {crop} x {crop} -> probabilities over {clf.classes}")


class OnnxFERClassifier:
    """A FER model's ONNX graph (``nfgan export --fer-model``) with its pre-step in numpy: the same
    ``predict_proba`` as ``nfgan.fer.classifier.FERClassifier`` (FER normalisation of each uint8 face, the centre
    crop or with ``tta`` the ten crops whose softmax outputs are averaged)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        self.path = Path(path)
        self.session = make_session(self.path, threads)
        self.meta = session_metadata(self.session)
        if self.meta.get("nfgan.format") != ONNX_FORMAT or self.meta.get("nfgan.graph") != "fer":
            raise CheckpointError(f"{self.path}: not an nfgan FER graph (write one with nfgan export --format onnx "
                                  "--fer-model MODEL)")
        self.classes = list(self.meta["nfgan.classes"])
        self.crop, self.tta = int(self.meta["nfgan.crop"]), bool(self.meta["nfgan.tta"])
        self.image_size, self.framing = int(self.meta["nfgan.image_size"]), self.meta.get("nfgan.framing")

    def crops(self, faces_u8: np.ndarray) -> np.ndarray:
        """The graph's input for uint8 ``N x S x S`` faces: ``N x 1 x C x C`` (``10N`` crops with ``tta``)."""
        from nfgan.data.photometric import center_crop, five_crops
        from nfgan.fer.cv import normalise_all

        norm = normalise_all(faces_u8)
        if not self.tta:
            return center_crop(norm, self.crop)[:, None].astype(np.float32)
        views = np.stack([five_crops(f, self.crop, flips=True) for f in norm])   # N x 10 x C x C
        return views.reshape(-1, 1, self.crop, self.crop).astype(np.float32)

    def predict_proba(self, faces: np.ndarray, batch: int = 256) -> np.ndarray:
        faces = np.asarray(faces)
        faces = faces[None] if faces.ndim == 2 else faces
        if faces.dtype != np.uint8 or faces.ndim != 3 or faces.shape[1:] != (self.image_size, self.image_size):
            raise ValueError(f"faces must be uint8 N x {self.image_size} x {self.image_size}, got "
                             f"{faces.dtype} {faces.shape}")
        views = 10 if self.tta else 1
        out = []
        for s in range(0, len(faces), batch):
            x = self.crops(faces[s:s + batch])
            probs = self.session.run(["probabilities"], {"crops": x})[0]
            out.append(probs.reshape(-1, views, probs.shape[1]).mean(1))
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def predict_labels(self, faces: np.ndarray) -> list[str]:
        return [self.classes[i] for i in self.predict_proba(faces).argmax(1)]
