"""Generator models and the auxiliary networks their losses use.

``model.type`` in a config picks the model here, in one place: :data:`MODEL_TYPES` maps each type to its class
(``nfgan.models.base.GeneratorModel`` states the contract). Importing this package loads no model code; each
class is imported when asked for.
"""
from __future__ import annotations

import importlib

#: model.type -> (module, class); a fixed table, never extended from a config file
MODEL_TYPES = {
    "nfgan": ("nfgan.models.nfgan", "NFGANModel"),       # the paper's Enc + Dec + Dis (Tables 1-3, Algorithm 1)
    "pix2pix": ("nfgan.models.pix2pix", "Pix2PixModel"),  # U-Net + PatchGAN baseline (optionally with L_id)
}


class UnknownModelError(ValueError):
    pass


def model_class(model_type: str):
    """The model class of a ``model.type``."""
    if model_type not in MODEL_TYPES:
        raise UnknownModelError(f"model.type must be one of {sorted(MODEL_TYPES)}, got {model_type!r}")
    module, name = MODEL_TYPES[model_type]
    return getattr(importlib.import_module(module), name)
