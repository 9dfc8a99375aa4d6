"""The one conversion between stored faces (uint8 gray, 0..255) and what the networks read ([-1, 1] floats)."""
from __future__ import annotations

import numpy as np
import torch


def to_unit(images_u8) -> torch.Tensor:
    """uint8 faces (numpy array or tensor, any shape) -> float32 tensor of the same shape in [-1, 1]."""
    t = images_u8 if torch.is_tensor(images_u8) else torch.from_numpy(np.ascontiguousarray(images_u8))
    return t.float().div_(127.5).sub_(1.0) if t.dtype != torch.float32 else t.div(127.5).sub_(1.0)


def to_unit_batch(images_u8) -> torch.Tensor:
    """uint8 ``B x S x S`` faces -> float32 ``B x 1 x S x S`` in [-1, 1] (a network's input batch); ``B x C x S x S``
    (faces of several channels) keep their channels."""
    x = to_unit(images_u8)
    return x if x.ndim == 4 else x.unsqueeze(1)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float ``B x 1 x S x S`` in [-1, 1] (clamped) -> uint8 ``B x S x S`` numpy, rounded to the nearest level."""
    return ((images.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)[:, 0].cpu().numpy()
