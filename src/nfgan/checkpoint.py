"""Training checkpoints: one safetensors file per checkpoint, written atomically, never unpickled.

A checkpoint holds everything ``nfgan train --resume`` needs to continue exactly where it stopped, and what
``Normalizer.from_checkpoint`` needs to rebuild the networks:

* tensors ``net/<name>/<key>``: the state dicts of enc / dec / dis (parameters and BN buffers);
* tensors ``opt/<name>/<param index>/<key>``: each optimizer's per-parameter state (Adam moments, step);
* tensors ``rng/<name>``: RNG states (torch CPU RNG, the batch sampler's ``torch.Generator``, CUDA);
* metadata ``nfgan``: JSON with the format version, the step, the network hyper-parameters (``model``), the
  optimizers' ``param_groups`` and any extra JSON-able info (the resolved config, metrics so far...).

An *exported model* (``nfgan.inference.export_model``, e.g. the shipped ``nfgan_london64.safetensors``)
holds only the inference networks, as tensors ``<name>/<key>``, and metadata ``nfgan_model`` (JSON: format,
kind, model hyper-parameters, provenance); :func:`read_exported_model` reads it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from nfgan.atomic import save_safetensors
from nfgan.rundir import latest_checkpoint

FORMAT_VERSION = 1
EXPORT_KEY = "nfgan_model"     # safetensors metadata key of an exported model
#: name prefix of a network that holds the moving average of a generator network (``ema_gen``; written by
#: ``nfgan.training.ema``, preferred by ``nfgan.inference.load_model``)
EMA_PREFIX = "ema_"
EXPORT_FORMAT = 1


def averaged_nets(nets: Mapping[str, dict]) -> dict[str, dict]:
    """The moving averages among a checkpoint's networks (``load_checkpoint(...)["nets"]``), under the names of
    the networks they average (``ema_gen`` -> ``gen``); empty for a run without one."""
    return {name[len(EMA_PREFIX):]: state for name, state in nets.items() if name.startswith(EMA_PREFIX)}


class CheckpointError(ValueError):
    pass


def with_fixed_buffers(net: nn.Module, state: dict) -> dict:
    """``state`` for ``net.load_state_dict``: where the only tensors it lacks are the U-Net's fixed expression
    directions (``skip_proj*`` buffers; ``model.skip_proj_from``, e.g. a second stage resumed from a first stage's
    checkpoint), the net's own (loaded from that file) fill them; any other mismatch still fails the strict load."""
    own = net.state_dict()
    lacking = [k for k in own if k not in state]
    if lacking and all(k.rpartition(".")[2].startswith("skip_proj") for k in lacking):
        return {**{k: own[k] for k in lacking}, **state}
    return state


def save_checkpoint(path: str | Path, step: int, nets: Mapping[str, nn.Module],
                    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
                    rng: Mapping[str, torch.Tensor] | None = None, model: dict | None = None,
                    extra: dict | None = None) -> Path:
    """Write a checkpoint atomically; returns its path."""
    tensors: dict[str, torch.Tensor] = {}
    for name, net in nets.items():
        for k, v in net.state_dict().items():
            tensors[f"net/{name}/{k}"] = v
    groups = {}
    for name, opt in (optimizers or {}).items():
        sd = opt.state_dict()
        groups[name] = sd["param_groups"]
        for idx, state in sd["state"].items():
            for k, v in state.items():
                if not torch.is_tensor(v):
                    v = torch.tensor(v)
                tensors[f"opt/{name}/{idx}/{k}"] = v
    for name, state in (rng or {}).items():
        tensors[f"rng/{name}"] = state
    meta = {"format": FORMAT_VERSION, "step": int(step), "model": model or {}, "param_groups": groups,
            "extra": extra or {}}
    path = Path(path)
    save_safetensors(path, tensors, metadata={"nfgan": json.dumps(meta)})
    return path


def _json_object(raw, path: Path, what: str) -> dict:
    try:
        obj = json.loads(raw)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: {what} metadata is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: {what} metadata must be a JSON object, got {type(obj).__name__}")
    return obj


def _open(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """Metadata and tensors of a safetensors file (CPU); a damaged file is a ``CheckpointError``."""
    from safetensors import safe_open

    if not path.is_file():
        raise CheckpointError(f"{path}: not found (or not a regular file)")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {}), {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for a damaged header or data
        raise CheckpointError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0][:200]})") from None


def load_checkpoint(path: str | Path, expect_nets: tuple[str, ...] = ()) -> dict:
    """Read a checkpoint: ``{"step", "model", "extra", "nets": {name: state_dict}, "optimizers":
    {name: optimizer state_dict}, "rng": {name: tensor}}`` (all tensors on CPU). ``expect_nets``: networks
    the file must hold. Every problem is a ``CheckpointError`` naming the file."""
    path = Path(path)
    if path.is_dir():  # a run folder: take its last checkpoint
        try:
            path = latest_checkpoint(path)
        except ValueError as e:
            raise CheckpointError(str(e)) from None
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    raw, tensors = _open(path)
    if not raw.get("nfgan"):
        raise CheckpointError(f"{path}: safetensors file without nfgan metadata - not an nfgan checkpoint")
    meta = _json_object(raw["nfgan"], path, "checkpoint")
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {meta.get('format')!r} (this nfgan reads {FORMAT_VERSION})")
    for key, kind in (("step", int), ("model", dict), ("param_groups", dict), ("extra", dict)):
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise CheckpointError(f"{path}: checkpoint metadata {key!r} must be {kind.__name__}, got {meta.get(key)!r:.80}")
    nets: dict[str, dict] = {}
    opt_state: dict[str, dict[int, dict]] = {}
    rng: dict[str, torch.Tensor] = {}
    for key, v in tensors.items():
        kind, _, rest = key.partition("/")
        parts = rest.split("/", 2 if kind == "opt" else 1)
        if kind == "net" and len(parts) == 2:
            nets.setdefault(parts[0], {})[parts[1]] = v
        elif kind == "opt" and len(parts) == 3 and parts[1].isdigit():
            opt_state.setdefault(parts[0], {}).setdefault(int(parts[1]), {})[parts[2]] = v
        elif kind == "rng" and rest:
            rng[rest] = v
        else:
            raise CheckpointError(f"{path}: unexpected tensor {key!r} in a checkpoint")
    missing = [n for n in expect_nets if n not in nets]
    if missing:
        raise CheckpointError(f"{path}: checkpoint has no {missing} network(s) (has {sorted(nets)})")
    optimizers = {name: {"state": opt_state.get(name, {}), "param_groups": groups}
                  for name, groups in meta["param_groups"].items()}
    return {"path": path, "step": meta["step"], "model": meta["model"], "extra": meta["extra"], "nets": nets,
            "optimizers": optimizers, "rng": rng}


def read_exported_model(path: str | Path) -> tuple[dict, dict[str, dict[str, torch.Tensor]]] | None:
    """``(info, {net name: state dict})`` of an exported model file, ``None`` for any other safetensors file.

    Float16-stored tensors are returned as float32."""
    path = Path(path)
    raw, tensors = _open(path)
    if EXPORT_KEY not in raw:
        return None
    info = _json_object(raw[EXPORT_KEY], path, "exported model")
    if info.get("format") != EXPORT_FORMAT:
        raise CheckpointError(f"{path}: exported model format {info.get('format')!r} (this nfgan reads {EXPORT_FORMAT})")
    if not isinstance(info.get("kind"), str) or not isinstance(info.get("model"), dict):
        raise CheckpointError(f"{path}: exported model metadata needs 'kind' (a model type) and 'model' (its "
                              f"hyper-parameters); got kind={info.get('kind')!r:.40}, model={info.get('model')!r:.40}")
    nets: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        name, _, sub = key.partition("/")
        if not sub:
            raise CheckpointError(f"{path}: unexpected tensor {key!r} in an exported model")
        nets.setdefault(name, {})[sub] = value.float() if value.dtype == torch.float16 else value
    return info, nets
