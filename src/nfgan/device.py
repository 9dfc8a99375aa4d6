"""Where the networks run: one check of a device name for every command (``nfgan train``, ``normalize``,
``traverse``, ``fer cv/train/predict``) and the Python API (``Normalizer``, ``FERClassifier``).

``resolve_device`` accepts ``cpu``, ``cuda`` and ``cuda:N`` and refuses, with the reason, a name torch does not
know, another device type, or a CUDA device this torch build cannot see - before a command writes anything,
instead of a traceback from deep inside torch at the first ``.to()``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICE_HELP = "cpu (default), cuda or cuda:N"


class DeviceError(ValueError):
    """A device name that cannot be used here; the message says why."""


def resolve_device(name: str | torch.device) -> torch.device:
    """``name`` as a torch device, or ``DeviceError`` saying why it cannot be used."""
    import torch   # here, so that the command line can import this module for its help text without torch

    name = str(name)
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"device must be cpu, cuda or cuda:N, got {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"device must be cpu, cuda or cuda:N, got {name!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} requested, but this torch build sees no CUDA device "
                              f"(torch {torch.__version__}); use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(f"device {name!r} requested, but torch sees {count} CUDA device(s): "
                              f"cuda:0..cuda:{count - 1}")
    return device
