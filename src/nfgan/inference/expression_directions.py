"""Expression directions in the U-Net's mid skips: an inference step fitted on a trained model (issue #23's
expression lever; docs/experiments.md, probe `skipproj` and round 49).

The residual expression of people a model never saw reaches its output through the U-Net's 16 px and 8 px skip
maps, which carry the person too. For every frontal expressive photo of the model's training people, the
difference between the encoder's map of the photo and that of the same person's frontal neutral photo shows what
an expression does to that map. Of those differences, the step keeps the directions that are expression-specific:
inside the differences' first ``rank`` principal directions, the generalised eigenvectors of (the differences'
second moment, the spread of the training people's neutral maps around their mean ``c``), the largest ratio first,
so that a direction along which people's neutral faces differ ranks low. The first ``k`` of them, orthonormalised
(``Q``), are stored in the U-Net (``skip_proj{i}_q`` / ``_c`` buffers, ``model.skip_proj_k``), which then maps each
such skip map ``s`` to ``s - Q Q^T (s - c)`` for every input: its part along the directions becomes the average
neutral face's. A linear step inside the network, so the ONNX graph has it too.

:func:`fit_directions` fits them from generator inputs; :func:`with_directions` returns a model that applies them
(``tools/fit_expression_directions.py`` collects the pairs from prepared folders and writes the model file).
"""
from __future__ import annotations

import numpy as np
import torch

from nfgan.pixels import to_unit_batch

#: the skip sizes (px) the step acts on by default: where the residual expression comes through
DEFAULT_SIDES = (16, 8)
#: the number of principal directions of the differences the generalised problem is solved in
DEFAULT_RANK = 256


class ExpressionDirectionsError(ValueError):
    pass


def skip_maps(gen: torch.nn.Module, inputs_u8: np.ndarray, sides, batch_size: int = 128) -> dict[int, torch.Tensor]:
    """The encoder's maps of ``sides`` px for uint8 generator inputs, flattened, float64: side -> N x D (the
    network in eval mode; its own projection, if any, does not touch the encoder's maps)."""
    gen.eval()
    got: dict[int, list] = {int(s): [] for s in sides}
    with torch.no_grad():
        for b in range(0, len(inputs_u8), batch_size):
            maps, _ = gen._encode(to_unit_batch(inputs_u8[b:b + batch_size]))
            for m in maps:
                if m.shape[-1] in got:
                    got[m.shape[-1]].append(m.flatten(1).double())
    return {s: torch.cat(v) for s, v in got.items()}


def expression_specific(displacements: torch.Tensor, neutral_dev: torch.Tensor, rank: int = DEFAULT_RANK,
                        ridge: float = 1e-3) -> torch.Tensor:
    """Orthonormal directions (D x r, the most expression-specific first) inside the first ``rank`` principal
    directions of ``displacements`` (N x D): the generalised eigenvectors of their second moment against that of
    ``neutral_dev`` (M x D, neutral maps minus their mean) plus ``ridge`` times its mean eigenvalue."""
    from scipy.linalg import eigh

    _, _, vh = torch.linalg.svd(displacements, full_matrices=False)
    v = vh[:rank].T
    dr, nr = (displacements @ v).numpy(), (neutral_dev @ v).numpy()
    sd, sn = dr.T @ dr / len(dr), nr.T @ nr / len(nr)
    sn = sn + ridge * np.trace(sn) / len(sn) * np.eye(len(sn))
    _, w = eigh(sd, sn)
    q, _ = torch.linalg.qr(v @ torch.from_numpy(np.ascontiguousarray(w[:, ::-1])))
    return q


def fit_directions(gen: torch.nn.Module, expressive_u8: np.ndarray, neutral_u8: np.ndarray,
                   neutral_unique: np.ndarray, sides=DEFAULT_SIDES,
                   rank: int = DEFAULT_RANK) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """side -> (Q: D x r float64 directions, the most expression-specific first; c: the mean neutral map) from
    generator inputs of pairs: ``expressive_u8[j]`` and ``neutral_u8[j]`` show the same person (uint8, as the
    model's input rule gives them); ``neutral_unique`` indexes one row per distinct neutral photo."""
    if len(expressive_u8) != len(neutral_u8) or len(expressive_u8) < 2:
        raise ExpressionDirectionsError(f"need two or more (expressive, neutral) pairs of equal count, got "
                                        f"{len(expressive_u8)} and {len(neutral_u8)}")
    unique = torch.as_tensor(np.asarray(neutral_unique, dtype=np.int64))
    if len(unique) < 2:
        raise ExpressionDirectionsError("need two or more distinct neutral photos")
    a, b = skip_maps(gen, expressive_u8, sides), skip_maps(gen, neutral_u8, sides)
    out = {}
    for s in a:
        c = b[s].mean(0)             # over the pairs (a neutral photo counts once per expressive photo of it)
        out[s] = (expression_specific(a[s] - b[s], b[s][unique] - c, rank), c)
    return out


def with_directions(gen: torch.nn.Module, build, model_cfg: dict, directions: dict,
                    k: int) -> tuple[torch.nn.Module, dict]:
    """A copy of U-Net ``gen`` (its hyper-parameters ``model_cfg``; ``build(cfg)["gen"]`` makes one) that takes
    the first ``k`` of ``directions`` (:func:`fit_directions`) out of its skips, and the hyper-parameters that
    rebuild it."""
    sides = sorted((int(s) for s in directions), reverse=True)
    cfg = {**model_cfg, "skip_proj_k": int(k), "skip_proj_sides": sides}
    try:
        new = build(cfg)["gen"]
    except ValueError as e:
        raise ExpressionDirectionsError(str(e)) from None
    missing, unexpected = new.load_state_dict(gen.state_dict(), strict=False)
    if unexpected or any(not m.startswith("skip_proj") for m in missing):
        raise ExpressionDirectionsError(f"the generator does not match its hyper-parameters (missing {missing[:3]}, "
                                        f"unexpected {unexpected[:3]})")
    size = int(cfg.get("image_size", 64))
    with torch.no_grad():
        for i in new.projected_skips:
            q, c = directions[size >> (i + 1)]
            if q.shape[1] < k:
                raise ExpressionDirectionsError(f"{k} directions asked for the {size >> (i + 1)} px skip, "
                                                f"{q.shape[1]} fitted")
            getattr(new, f"skip_proj{i}_q").copy_(q[:, :k])
            getattr(new, f"skip_proj{i}_c").copy_(c)
    return new.eval(), cfg
