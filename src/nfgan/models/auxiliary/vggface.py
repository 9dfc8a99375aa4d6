"""VGG-Face (Parkhi, Vedaldi, Zisserman, BMVC 2015) as the perceptual network of L_feat (paper eq. 2).

The weights are NOT shipped (their licence is the Oxford VGG group's, non-commercial research use):
the user passes the widely used PyTorch conversion ``vgg_face_dag.pth`` (a state dict with keys
``conv1_1.weight`` ... ``conv5_3.bias``, ``fc6.*``, ``fc7.*``, ``fc8.*``) or the same tensors as a
``.safetensors`` file. The network is the 16-layer VGG: 13 3x3 convolutions (padding 1) with ReLU in five
blocks separated by 2x2/2 max pooling, 224x224 RGB input from which that conversion subtracts the mean
colour (129.186, 104.762, 93.594) of the training faces (no scaling: inputs stay in the [0, 255] range).

Only the layers up to the deepest requested output are built and loaded (the fully connected layers are
never needed for feature maps), so a file holding just the convolutions is enough.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from nfgan.models.auxiliary.common import FeatureNet, check_faces, check_state_dict, gray_to_rgb255, load_tensor_file

#: (block, index) -> (in_channels, out_channels) for the 13 convolutions
VGG_CONVS: dict[str, tuple[int, int]] = {}
for _block, (_n, _ch) in enumerate([(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)], start=1):
    for _i in range(1, _n + 1):
        _prev = 3 if not VGG_CONVS else list(VGG_CONVS.values())[-1][1]
        VGG_CONVS[f"conv{_block}_{_i}"] = (_prev, _ch)

#: mean RGB of the VGG-Face training images, subtracted by the released conversion
VGGFACE_MEAN_RGB = (129.186279296875, 104.76238250732422, 93.59396362304688)
VGGFACE_SIZE = 224


def layer_names() -> list[str]:
    """Names a user may request: ``convB_I`` (after its ReLU), ``convB`` (= the last conv of block B after
    ReLU; ``conv5`` is eq. 2's "5th convolutional layer") and ``poolB`` (after block B's max pooling)."""
    names = list(VGG_CONVS)
    names += [f"conv{b}" for b in range(1, 6)] + [f"pool{b}" for b in range(1, 6)]
    return names


def _canonical(name: str) -> str:
    if name in VGG_CONVS or name.startswith("pool"):
        return name
    block = name[len("conv"):]
    return [c for c in VGG_CONVS if c.startswith(f"conv{block}_")][-1]


class VGGFaceNet(FeatureNet):
    """Frozen VGG-Face returning the requested layer outputs for ``B x 1 x H x W`` faces in [-1, 1].

    The gray faces are mapped to [0, 255], resized to 224x224 (bilinear), copied to RGB and
    mean-subtracted. ``layers`` is a name or a list of names from :func:`layer_names` (default conv5_3).
    """

    name = "vggface"

    def __init__(self, path: str | Path, layers: str | list[str] = "conv5_3"):
        super().__init__()
        self.layers = [layers] if isinstance(layers, str) else list(layers)
        known = layer_names()
        bad = [n for n in self.layers if n not in known]
        if bad or not self.layers:
            raise ValueError(f"vggface: unknown layer(s) {bad or self.layers}; known: {', '.join(known)}")
        order = list(VGG_CONVS)
        # how deep to build: the last conv needed (a poolB needs block B's last conv)
        deepest = max((order.index(_canonical(n)) if not n.startswith("pool")
                       else order.index(_canonical(f"conv{n[4:]}")) for n in self.layers))
        self.convs = nn.ModuleDict({k: nn.Conv2d(*VGG_CONVS[k], 3, 1, 1) for k in order[: deepest + 1]})
        self.register_buffer("mean_rgb", torch.tensor(VGGFACE_MEAN_RGB).view(1, 3, 1, 1))
        sd = load_tensor_file(path, "vggface", keep=lambda k: k.startswith("conv"))
        expected = {}
        for k, conv in self.convs.items():
            expected[f"{k}.weight"] = tuple(conv.weight.shape)
            expected[f"{k}.bias"] = tuple(conv.bias.shape)
        check_state_dict(sd, expected, path, "VGG-Face (vgg_face_dag)")
        self.convs.load_state_dict({f"{k}": sd[k] for k in expected}, strict=True)
        self.path = str(path)
        self.freeze()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_faces(x, self.name)
        h = gray_to_rgb255(x, VGGFACE_SIZE) - self.mean_rgb
        out: dict[str, torch.Tensor] = {}
        wanted = set(self.layers)
        names = list(self.convs)
        for i, k in enumerate(names):
            h = F.relu(self.convs[k](h))
            out[k] = h
            block = k[4:].split("_")[0]
            if i + 1 == len(VGG_CONVS) or not list(VGG_CONVS)[i + 1].startswith(f"conv{block}_"):
                out[f"conv{block}"] = h
                if f"pool{block}" in wanted:
                    out[f"pool{block}"] = F.max_pool2d(h, 2, 2)
                if i + 1 < len(names):
                    h = F.max_pool2d(h, 2, 2)
        return [out[n] for n in self.layers]
