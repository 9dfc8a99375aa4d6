"""Light CNN (Wu, He, Sun, Tan, "A Light CNN for Deep Face Representation with Noisy Labels", TIFS 2018),
the identity network of L_id (paper eq. 6: L1 on its last two layers).

Weights are NOT shipped (the authors' release, research use only); the user passes an official
checkpoint: a ``torch.save``'d dict whose ``state_dict`` keys carry DataParallel's ``module.`` prefix
(``module.features.0.filter.weight``, ``module.fc1.filter.weight``, ``module.fc2.weight`` ...), or the
same tensors, prefix optional, as ``.safetensors``. Variants (architectures of the official code):

* ``lightcnn9``: MFM 5x5 conv (48) - pool - group(96) - pool - group(192) - pool - group(128) -
  group(128) - pool - MFM fc1 (8192 -> 256) - fc2 (256 -> classes). Keys ``features.{0,2,4,6,7}``,
  ``fc1.filter``, ``fc2``.
* ``lightcnn29``: MFM 5x5 conv1 (48) then four stages of residual MFM blocks (1, 2, 3, 4 blocks) each
  followed by a ``group`` (1x1 MFM then 3x3 MFM) and 2x2 max pools (none after stage 3), MFM ``fc``
  (8192 -> 256) and ``fc2``.
* ``lightcnn29v2``: the same convolutions, but each pool is ``max_pool + avg_pool`` (also after conv1),
  ``fc`` is a plain linear layer (8192 -> 256) and ``fc2`` has no bias.

MFM (max-feature-map): a convolution / linear layer with 2n outputs whose two halves are compared
element-wise; the maximum (n channels) is the output. Pools are 2x2/2 (``ceil_mode``, irrelevant at the
sizes used). Input: 128x128 gray in [0, 1].

Returned layers (``layers`` option), the "last two layers" of eq. (6) by default:

* ``fc1``: the 256-d face feature (MFM fc1 for LightCNN-9 / ``fc`` for LightCNN-29, before dropout);
* ``fc2``: the classifier output over the training identities (79077 for the released 9/29-layer
  models, 80013 for v2); number read from the checkpoint.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from nfgan.models.auxiliary.common import FeatureNet, WeightsFileError, check_faces, check_state_dict, load_tensor_file, resize_faces

VARIANTS = ("lightcnn9", "lightcnn29", "lightcnn29v2")
LIGHTCNN_SIZE = 128
LAYERS = ("fc1", "fc2")


class MFMConv(nn.Module):
    """Max-feature-map convolution: ``max`` of the two halves of a conv with ``2 * out_ch`` filters."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.filter = nn.Conv2d(in_ch, 2 * out_ch, kernel, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.filter(x).chunk(2, dim=1)
        return torch.maximum(a, b)


class MFMLinear(nn.Module):
    """Max-feature-map fully connected layer."""

    def __init__(self, in_f: int, out_f: int):
        super().__init__()
        self.filter = nn.Linear(in_f, 2 * out_f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.filter(x).chunk(2, dim=1)
        return torch.maximum(a, b)


class Group(nn.Module):
    """1x1 MFM (same width) followed by a 3x3 MFM (new width)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv_a = MFMConv(in_ch, in_ch, 1, 1, 0)
        self.conv = MFMConv(in_ch, out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.conv_a(x))


class ResBlock(nn.Module):
    """Two 3x3 MFM convolutions with an identity shortcut (no activation after the sum)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = MFMConv(ch, ch, 3, 1, 1)
        self.conv2 = MFMConv(ch, ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + x


def _pool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 2, 2, ceil_mode=True)


def _pool_v2(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 2) + F.avg_pool2d(x, 2)


class LightCNN9(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            MFMConv(1, 48, 5, 1, 2), nn.MaxPool2d(2, 2, ceil_mode=True),
            Group(48, 96), nn.MaxPool2d(2, 2, ceil_mode=True),
            Group(96, 192), nn.MaxPool2d(2, 2, ceil_mode=True),
            Group(192, 128), Group(128, 128), nn.MaxPool2d(2, 2, ceil_mode=True),
        )
        self.fc1 = MFMLinear(8 * 8 * 128, 256)
        self.fc2 = nn.Linear(256, num_classes) if num_classes else None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc1(self.features(x).flatten(1))


class LightCNN29(nn.Module):
    def __init__(self, num_classes: int, v2: bool = False):
        super().__init__()
        self.v2 = v2
        self.conv1 = MFMConv(1, 48, 5, 1, 2)
        self.block1 = nn.Sequential(*[ResBlock(48) for _ in range(1)])
        self.group1 = Group(48, 96)
        self.block2 = nn.Sequential(*[ResBlock(96) for _ in range(2)])
        self.group2 = Group(96, 192)
        self.block3 = nn.Sequential(*[ResBlock(192) for _ in range(3)])
        self.group3 = Group(192, 128)
        self.block4 = nn.Sequential(*[ResBlock(128) for _ in range(4)])
        self.group4 = Group(128, 128)
        self.fc = nn.Linear(8 * 8 * 128, 256) if v2 else MFMLinear(8 * 8 * 128, 256)
        self.fc2 = nn.Linear(256, num_classes, bias=not v2) if num_classes else None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        pool = _pool_v2 if self.v2 else _pool
        x = self.conv1(x)
        x = pool(x)
        x = pool(self.group1(self.block1(x)))
        x = pool(self.group2(self.block2(x)))
        x = self.group4(self.block4(self.group3(self.block3(x))))
        x = pool(x)
        return self.fc(x.flatten(1))


class LightCNNNet(FeatureNet):
    """Frozen Light CNN returning ``[fc1 (B x 256), fc2 (B x classes)]`` (or the ``layers`` asked for)
    for ``B x 1 x H x W`` faces in [-1, 1] (mapped to [0, 1] gray and resized to 128x128)."""

    name = "lightcnn"

    def __init__(self, path: str | Path, variant: str = "lightcnn9", layers: list[str] | str | None = None):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"lightcnn: unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
        self.layers = list(LAYERS) if layers is None else ([layers] if isinstance(layers, str) else list(layers))
        bad = [n for n in self.layers if n not in LAYERS]
        if bad or not self.layers:
            raise ValueError(f"lightcnn: unknown layer(s) {bad or self.layers}; known: {', '.join(LAYERS)}")
        self.variant = variant
        sd = load_tensor_file(path, f"lightcnn-{variant}")
        num_classes = 0
        if "fc2" in self.layers:
            if "fc2.weight" not in sd or sd["fc2.weight"].dim() != 2:
                raise WeightsFileError(f"{path}: not a {variant} checkpoint: key 'fc2.weight' is missing "
                                       f"(needed for layer fc2; ask for layers: [fc1] to do without it)")
            num_classes = int(sd["fc2.weight"].shape[0])
        self.net = LightCNN9(num_classes) if variant == "lightcnn9" else LightCNN29(num_classes, variant.endswith("v2"))
        expected = {k: tuple(v.shape) for k, v in self.net.state_dict().items()}
        check_state_dict(sd, expected, path, variant)
        self.net.load_state_dict({k: sd[k] for k in expected}, strict=True)
        self.path = str(path)
        self.freeze()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_faces(x, self.name)
        if x.shape[1] == 3:
            x = x.mean(dim=1, keepdim=True)
        g = resize_faces((x + 1.0) * 0.5, LIGHTCNN_SIZE)
        feat = self.net.embed(g)
        out = {"fc1": feat}
        if "fc2" in self.layers:
            out["fc2"] = self.net.fc2(feat)
        return [out[n] for n in self.layers]
