"""NFGAN (the paper's model): Encoder + Decoder generator and a Discriminator, trained by Algorithm 1 with the
gradient routing of Sec. 4.6.

One step, all losses computed with the current parameters, then all three networks updated (Algorithm 1's
simultaneous update)::

    z = Enc(x);  x~ = Dec(z)
    L_feat  = eq. (2)  perceptual net:  phi(x~) vs phi(y)      (phi(y) cached: the net is frozen)
    L_id    = eq. (6)  identity net:    psi(x~) vs psi(x)      (psi(x) cached)
    L_pixel = eq. (7)  |x~ - y|
    L_sym   = eq. (3)  Laplacian symmetry of x~
    L_GAN-Dec = eq. (5) on Dis(x~);  L_GAN-Dis = eq. (4) on Dis(g), Dis(x~)

    Enc <- grad_Enc (L_feat + l1 L_id + l2 L_pixel)                          "encoder loss" L_E
    Dec <- grad_Dec (L_E + eta L_GAN-Dec + l3 L_sym)
    Dis <- grad_Dis  L_GAN-Dis

Routing, exactly and with one forward pass (:func:`routed_backward`): ``L_E.backward(inputs=Enc+Dec params)``
gives Enc its whole gradient and Dec the L_E part; ``(eta L_GAN-Dec + l3 L_sym).backward(inputs=Dec params)``
adds the rest to Dec only - autograd never propagates it into z, so the adversarial and symmetry signals cannot
reach Enc; and ``L_GAN-Dis.backward(inputs=Dis params)`` touches the discriminator alone. The second backward
re-walks the decoder (the price of exactness: a detached second decoder pass would cost a forward *and* a
backward). ``tests/test_routing.py`` proves the three claims.

Loss weights (config ``loss``): ``feat`` (1, the paper has no weight), ``id`` = lambda_1 = 3e-3,
``pixel`` = lambda_2 = 1e-3, ``sym`` = lambda_3 = 0.3, ``gan`` = eta = 0.1 (Sec. 5.2).
"""
from __future__ import annotations

import torch
from torch import nn

from nfgan.config import nonneg, opt, positive
from nfgan.models import losses as L
from nfgan.models.base import Batch, GeneratorModel, adam_schema
from nfgan.models.networks import Decoder, Encoder, build_networks

FEATURE_NETS = {"perceptual": {"type": "dlib_perceptual"}, "identity": {"type": "dlib_identity"}}


def feature_nets_schema(perceptual: dict | None, identity: dict | None) -> dict:
    """``feature_nets``: a spec (``{type: ..., path: ...}``) or null for each auxiliary net."""
    return {"perceptual": opt(perceptual, "mapping", nullable=True, path_keys=("path",)),
            "identity": opt(identity, "mapping", nullable=True, path_keys=("path",))}


def plain_losses(nets: dict, perceptual, identity, x, y, g, weights: dict) -> dict[str, torch.Tensor]:
    """The step's losses written plainly (fp32, eager, features recomputed): the reference the fast path
    is checked against (tests) and timed against (benchmarks/train_throughput.py)."""
    xt = nets["dec"](nets["enc"](x))
    out = {"feat": L.feature_loss(perceptual(xt), perceptual(y)) if perceptual is not None else xt.new_zeros(()),
           "id": L.identity_loss(identity(xt), identity(x)) if identity is not None else xt.new_zeros(()),
           "pixel": L.pixel_loss(xt, y), "sym": L.symmetry_loss(xt)}
    fake_logits = nets["dis"](xt)
    out["gan_dec"] = L.generator_adversarial_loss(fake_logits)
    out["gan_dis"] = L.discriminator_loss(nets["dis"](g), fake_logits)
    return out


def routed_backward(nets: dict, losses: dict[str, torch.Tensor], weights: dict) -> None:
    """Sec. 4.6 routing: accumulate each network's gradient from its own objective only (see module doc)."""
    enc_p = [p for p in nets["enc"].parameters() if p.requires_grad]
    dec_p = [p for p in nets["dec"].parameters() if p.requires_grad]
    dis_p = [p for p in nets["dis"].parameters() if p.requires_grad]
    enc_loss = weights["feat"] * losses["feat"] + weights["id"] * losses["id"] + weights["pixel"] * losses["pixel"]
    dec_extra = weights["gan"] * losses["gan_dec"] + weights["sym"] * losses["sym"]
    enc_loss.backward(inputs=enc_p + dec_p, retain_graph=True)
    if dec_extra.requires_grad:
        dec_extra.backward(inputs=dec_p, retain_graph=True)
    losses["gan_dis"].backward(inputs=dis_p)


class NFGANModel(GeneratorModel):
    """Enc, Dec (Tables 1-2) and Dis (Table 3) with the losses of eqs. (2)-(7) and the routing of Sec. 4.6."""

    TYPE = "nfgan"
    NETS = ("enc", "dec", "dis")
    GENERATOR = ("enc", "dec")
    LOSSES = ("feat", "id", "pixel", "sym", "gan_dec", "gan_dis")
    PROGRESS = ("feat", "pixel", "gan_dec", "gan_dis")
    WEIGHT_OF = {"gan_dec": "gan", "gan_dis": "gan"}
    OPTIMIZERS = {"enc": "enc", "dec": "dec", "dis": "dis"}

    @classmethod
    def schema(cls) -> dict:
        return {
            "model": {"type": opt("nfgan", choices=("nfgan",)), "latent_dim": opt(256, low=1, high=65536),
                      "image_size": opt(64, choices=(64,)), "lrelu_alpha": nonneg(0.3, high=1.0),
                      "init_std": positive(0.02, high=1.0)},
            "feature_nets": feature_nets_schema(**FEATURE_NETS),
            # gan = eta, id/pixel/sym = lambda_1/2/3 (Sec. 5.2)
            "loss": {"feat": nonneg(1.0), "id": nonneg(3.0e-3), "pixel": nonneg(1.0e-3), "sym": nonneg(0.3),
                     "gan": nonneg(0.1), "id_jitter": nonneg(0.0, high=1.0)},
            "optim": {"enc": adam_schema(), "dec": adam_schema(), "dis": adam_schema()},
        }

    @staticmethod
    def build_generator(model_cfg: dict) -> dict[str, nn.Module]:
        size, latent = int(model_cfg.get("image_size", 64)), int(model_cfg.get("latent_dim", 256))
        return {"enc": Encoder(latent, size), "dec": Decoder(latent, size)}

    def __init__(self, cfg: dict, device: torch.device, data, feature_nets: dict | None = None):
        super().__init__(cfg, device)
        self.features = self.frozen_features(data, feature_nets)
        m = cfg["model"]
        self.nets = build_networks(m["latent_dim"], m["image_size"], m["lrelu_alpha"], m["init_std"])
        for net in self.nets.values():
            self.place(net)
        self.optimizers = self.make_optimizers()

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        return self.nets["dec"](self.nets["enc"](x))

    def compute_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """All six losses of Algorithm 1 (graphs kept for :meth:`backward`)."""
        with self.autocast():
            xt = self.generate(batch.x)
            out = {**self.features(xt, batch.x_rows, batch.y_rows, batch.mixed, batch.x_real, batch.y),
                   "pixel": L.pixel_loss(xt, batch.y, batch.y_mask),
                   "sym": L.symmetry_loss(xt) if self.weights["sym"] > 0 else xt.new_zeros((), dtype=torch.float32)}
            fake_logits = self.nets["dis"](xt)
            out["gan_dec"] = L.generator_adversarial_loss(fake_logits)
            out["gan_dis"] = L.discriminator_loss(self.nets["dis"](batch.g), fake_logits)
        return out

    def backward(self, losses: dict[str, torch.Tensor]) -> None:
        routed_backward(self.nets, losses, self.weights)
