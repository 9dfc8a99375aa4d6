"""L_feat (eq. 2) and L_id (eq. 6) with frozen auxiliary networks, shared by every generator model.

The auxiliary networks never change during training, so their features of the fixed dataset rows (targets for
L_feat, inputs for L_id) are computed once (:class:`FeatureCache`); only the generated faces go through them at
every step. Networks come from the fixed table of ``nfgan.models.auxiliary.feature_nets.build_feature_net``:
a config names a type and a weights file, never code.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nfgan.models import losses as L
from nfgan.pixels import to_unit_batch


def frozen_feature_net(spec: dict | None) -> nn.Module | None:
    """A frozen feature net (eval mode, no gradients) from its config spec; ``None`` disables the loss."""
    if spec is None:
        return None
    from nfgan.models.auxiliary.feature_nets import build_feature_net

    net = build_feature_net(spec)
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


class FeatureCache:
    """Frozen-net features of fixed dataset rows, computed once (the nets never change during training).
    ``read(rows)`` gives the rows' uint8 faces; ``n_rows`` is the size of the row space."""

    def __init__(self, net: nn.Module, read, n_rows: int, rows: np.ndarray, device: torch.device,
                 autocast, chunk: int = 64, channels_last: bool = False):
        rows = np.unique(rows)
        self.position = torch.full((int(n_rows),), -1, dtype=torch.long)
        self.position[torch.from_numpy(rows)] = torch.arange(len(rows))
        parts: list[list[torch.Tensor]] = []
        with torch.no_grad(), autocast():
            for i in range(0, len(rows), chunk):
                x = to_unit_batch(read(rows[i:i + chunk])).to(device)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                parts.append([m.float() for m in net(x)])
        self.maps = [torch.cat([p[j] for p in parts]) for j in range(len(parts[0]))] if parts else []

    def __call__(self, rows: np.ndarray) -> list[torch.Tensor]:
        pos = self.position[torch.from_numpy(np.asarray(rows))]
        if (pos < 0).any():
            raise KeyError("feature cache asked for rows it does not hold")
        pos = pos.to(self.maps[0].device)
        return [m[pos] for m in self.maps]


class SharedTrunk:
    """Runs the two auxiliary nets as ONE forward pass on x~ when they are stages of the same network.

    The default pair (``dlib_perceptual`` level-2 maps for L_feat, ``dlib_identity`` last two layers for
    L_id) are prefixes of the same dlib ResNet with the same weights: the identity pass computes the
    perceptual maps on its way, so running both separately would do the costly early layers (at 150 px)
    twice, forward and backward. ``SharedTrunk.maybe(perceptual, identity)`` returns a fused runner when the
    weights really are identical, else ``None``; its outputs equal the two nets' outputs exactly.
    """

    def __init__(self, perceptual, identity):
        self.perceptual, self.identity = perceptual, identity

    @staticmethod
    def maybe(perceptual, identity) -> "SharedTrunk | None":
        if perceptual is None or identity is None:
            return None
        if (getattr(perceptual, "name", "") != "dlib_perceptual" or getattr(identity, "name", "") != "dlib_identity"
                or not hasattr(identity, "resnet") or not hasattr(perceptual, "resnet")):
            return None
        full = identity.resnet.state_dict()
        part = perceptual.resnet.state_dict()
        if any(k not in full or full[k].shape != v.shape or not torch.equal(full[k], v) for k, v in part.items()):
            return None
        return SharedTrunk(perceptual, identity)

    def __call__(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        from nfgan.models.auxiliary.common import check_faces

        check_faces(x, "shared dlib trunk")
        f = self.identity.trunk_features(x)
        return [f[s] for s in self.perceptual.stages], [f["pooled"], f["descriptor"]]


def jitter(x: torch.Tensor, strength: float) -> torch.Tensor:
    """Each face of ``x`` (``B x C x H x W``) under its own random similarity transform: rotation up to
    ``10 * strength`` degrees, scale up to ``1 +- 0.1 * strength``, shift up to ``0.1 * strength`` of the size in
    x and y, border pixels repeated. Differentiable in ``x``; draws from torch's RNG on ``x``'s device."""
    b = x.shape[0]
    u = torch.rand(b, 4, device=x.device, dtype=torch.float32) * 2.0 - 1.0
    angle = u[:, 0] * (math.radians(10.0) * strength)
    scale = 1.0 + u[:, 1] * (0.1 * strength)
    shift = u[:, 2:] * (0.2 * strength)            # affine_grid's coordinates span 2 per image side
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False).to(x.dtype)


class FeatureLosses:
    """L_feat of generated faces against their targets' cached maps and L_id against their inputs' (a loss whose
    weight is 0 loads no network and is 0). ``nets`` (``{"perceptual": module, "identity": module}``, from
    Python only) replace the networks the config's ``feature_nets`` specs name, e.g. small nets in tests.

    ``loss.id_jitter`` > 0 shows the identity net each generated face under a small random rotation, scale and
    shift (:func:`jitter`) while its inputs' features stay those of the unmoved faces: the generator cannot keep
    L_id low with pixel patterns that only one exact placement of the face turns into the right descriptor
    (issue #23 item 6: identity that another network also sees). The identity pass then runs apart from
    L_feat's, on the moved faces.

    ``loss.id_reference: target`` (pix2pix configs) compares the output's identity features with its target's,
    the person's real frontal neutral face, instead of the input's (eq. 6): an expressive or frontalised 3/4
    input's descriptor carries its expression and warp artefacts.

    ``loss.id2`` > 0 (pix2pix configs) adds a second L_id, the same eq. (6) with the network ``feature_nets.identity2``
    names (e.g. nfgan's own identity net, :mod:`nfgan.models.auxiliary.identity_net`), against the same reference
    and on the same (moved) faces: an output must keep what two unrelated networks see (issue #23 item 6).

    ``loss.id_rank`` > 0 (pix2pix configs, with L_id on) adds :func:`nfgan.models.losses.identity_rank_loss` on
    the identity net's descriptors (its last map) of the same outputs and references: nearer to one's own
    reference than to the batch's other people's (rank-1 identification; people from ``data.subject_codes()``)."""

    def __init__(self, model, data, nets: dict[str, nn.Module] | None = None):
        cfg, fn, nets = model.cfg, model.cfg["feature_nets"], nets or {}
        self.perceptual = self._net("perceptual", fn, nets) if model.weights["feat"] > 0 else None
        self.identity = self._net("identity", fn, nets) if model.weights["id"] > 0 else None
        #: the second L_id's net; ``None`` when ``loss.id2`` is 0 or the model has no such loss (NFGAN)
        self.has_id2 = "id2" in model.weights
        self.identity2 = self._net("identity2", fn, nets) if model.weights.get("id2", 0) > 0 else None
        for net in (self.perceptual, self.identity, self.identity2):
            if net is not None:
                model.place(net)
        self.id_jitter = float(model.weights.get("id_jitter", 0.0))
        #: loss.id_rank > 0: each batch row's person (``TrainingData.subject_codes``), for the ranking term
        self.has_id_rank = "id_rank" in model.weights
        self.subject_code = (torch.from_numpy(data.subject_codes())
                             if model.weights.get("id_rank", 0) > 0 and self.identity is not None else None)
        self.shared_trunk = (SharedTrunk.maybe(self.perceptual, self.identity)
                             if cfg["train"]["share_trunk"] and self.id_jitter == 0 else None)
        chunk = int(cfg["train"]["feature_batch"])
        train = data.train
        all_targets = train.used_targets()
        cache = lambda net, rows: FeatureCache(net, data.read, len(data), rows, model.device,  # noqa: E731
                                               model.autocast, chunk, model.channels_last)
        self.target_cache = cache(self.perceptual, all_targets) if self.perceptual is not None else None
        #: L_id's reference: the generator's input x (eq. 6) or its target y, the real frontal neutral face
        self.id_reference = str(model.weights.get("id_reference", "input"))
        id_rows = all_targets if self.id_reference == "target" else train.inputs
        self.input_cache = cache(self.identity, id_rows) if self.identity is not None else None
        self.input_cache2 = cache(self.identity2, id_rows) if self.identity2 is not None else None

    @staticmethod
    def _net(role: str, specs: dict, given: dict) -> nn.Module | None:
        """The net given from Python for this role (frozen here), else the one the config's spec names."""
        if given.get(role) is None:
            return frozen_feature_net(specs.get(role))
        net = given[role]
        for p in net.parameters():
            p.requires_grad_(False)
        return net.eval()

    def _fresh(self, cached: list[torch.Tensor], net, faces: torch.Tensor, m: np.ndarray, maps=None) -> list:
        """``cached`` (a batch's cached maps) with the rows ``m`` replaced by ``net``'s maps of ``faces`` (or by
        ``maps``, already computed): rows made by identity mixing, which no cache holds."""
        if maps is None:
            with torch.no_grad():
                maps = net(faces)
        where = torch.from_numpy(m).to(cached[0].device)
        out = []
        for c, f in zip(cached, maps):
            c = c.clone()
            c[where] = f.detach().to(c.dtype)
            out.append(c)
        return out

    def __call__(self, xt: torch.Tensor, x_rows, y_rows, mixed: np.ndarray | None = None,
                 x_real: torch.Tensor | None = None, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """L_feat and L_id (and their variants) of the generated faces ``xt`` of input rows ``x_rows`` and target
        rows ``y_rows``. Rows ``mixed`` (identity mixing, ``Batch.mixed``) take their reference features from
        ``x_real`` (their real inputs) and ``y`` (the batch's targets) instead of the caches."""
        zero = xt.new_zeros((), dtype=torch.float32)
        moved = xt          # what the identity nets see: x~, or x~ moved a little (loss.id_jitter)
        if self.shared_trunk is not None:     # never with id_jitter
            feat_maps, id_maps = self.shared_trunk(xt)
        else:
            feat_maps = self.perceptual(xt) if self.perceptual is not None else None
            if self.id_jitter > 0 and (self.identity is not None or self.identity2 is not None):
                moved = jitter(xt, self.id_jitter)
            id_maps = self.identity(moved) if self.identity is not None else None
        ref_rows = y_rows if self.id_reference == "target" else x_rows
        refs = self.input_cache(ref_rows) if id_maps is not None else None
        targets = self.target_cache(y_rows) if feat_maps is not None else None
        m = mixed if mixed is not None and mixed.any() else None
        if m is not None:
            y_m = y[torch.from_numpy(m).to(y.device)]
            ref_faces = y_m if self.id_reference == "target" else x_real
            if self.shared_trunk is not None:     # both nets' maps from one pass per face
                with torch.no_grad():
                    t_maps, y_ids = self.shared_trunk(y_m)
                    r_maps = y_ids if self.id_reference == "target" else self.shared_trunk(ref_faces)[1]
                targets = self._fresh(targets, None, y_m, m, t_maps)
                refs = self._fresh(refs, None, ref_faces, m, r_maps)
            else:
                targets = self._fresh(targets, self.perceptual, y_m, m) if targets is not None else None
                refs = self._fresh(refs, self.identity, ref_faces, m) if refs is not None else None
        out = {"feat": L.feature_loss(feat_maps, targets) if feat_maps is not None else zero,
               "id": L.identity_loss(id_maps, refs) if id_maps is not None else zero}
        if self.has_id_rank:
            out["id_rank"] = (L.identity_rank_loss(id_maps[-1], refs[-1],
                                                   self.subject_code[torch.from_numpy(np.asarray(x_rows, dtype=np.int64))])
                              if self.subject_code is not None else zero)
        if self.has_id2:
            refs2 = None
            if self.identity2 is not None:
                refs2 = self.input_cache2(ref_rows)
                if m is not None:
                    refs2 = self._fresh(refs2, self.identity2, ref_faces, m)
            out["id2"] = L.identity_loss(self.identity2(moved), refs2) if self.identity2 is not None else zero
        return out
