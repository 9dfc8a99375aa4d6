"""One model file whose generator weights are the average of several models' ("model soup").

    python tools/average_models.py MODEL MODEL [MODEL ...] --out OUT.safetensors [--weights W W ...]

Each MODEL is a run folder, a checkpoint (PATH#live / PATH#ema as for ``nfgan evaluate``), an exported file or a
shipped model's name. Averaging only makes sense for fine-tunes of one starting point (e.g. several second stages
continued from the same first-stage checkpoint), so the models must agree on everything but their weights: the
same kind and network shapes (every tensor's name and shape), the same input rule (``nfgan.data.generator_input``)
and the same kind of weights (all moving averages, or all live). Otherwise the tool refuses and says which model
differs and how.

Float tensors (parameters and BatchNorm statistics) are averaged in float64 with the given weights (equal by
default) and stored as float32; integer tensors (BatchNorm's batch counters) are the first model's. OUT keeps the
first model's recorded config and step, and records the sources (``averaged_from``: each file, its config name,
step, training data sources and weight); ``tools/export_default_model.py`` ships such a file with the union of the
sources' training data. The people it learned from (``train_subjects``, read by the FER leak guard) are the union of the
sources'; where any source does not record them, none are written and the guard refuses the file.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def average_generators(gens, weights=None):
    """The first generator with its networks' weights replaced by the weighted average of all of them (in place),
    and the weights used (normalised to sum 1). Raises ``ValueError`` naming the model (by position and source)
    that cannot be averaged with the first."""
    import torch

    if len(gens) < 2:
        raise ValueError("give at least two models to average")
    weights = [1.0] * len(gens) if weights is None else [float(w) for w in weights]
    if len(weights) != len(gens):
        raise ValueError(f"{len(weights)} weights for {len(gens)} models")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"weights must be >= 0 with a positive sum, got {weights}")
    weights = [w / sum(weights) for w in weights]
    first = gens[0]
    states = [g.nets.state_dict() for g in gens]
    for i, (g, state) in enumerate(zip(gens[1:], states[1:]), start=2):
        name = f"model {i} ({g.info.get('source')})"
        if g.kind != first.kind:
            raise ValueError(f"{name} is a {g.kind} model, the first a {first.kind} one")
        if set(state) != set(states[0]):
            diff = sorted(set(state) ^ set(states[0]))
            raise ValueError(f"{name} has other networks than the first: {', '.join(diff[:5])}")
        for key, value in state.items():
            if value.shape != states[0][key].shape:
                raise ValueError(f"{name}: {key} has shape {tuple(value.shape)}, the first's "
                                 f"{tuple(states[0][key].shape)}")
        if json.dumps(g.rule.as_dict(), sort_keys=True) != json.dumps(first.rule.as_dict(), sort_keys=True):
            raise ValueError(f"{name} has another input rule ({g.rule}) than the first ({first.rule})")
        if g.info.get("weights") != first.info.get("weights"):
            raise ValueError(f"{name} holds {g.info.get('weights')} weights, the first {first.info.get('weights')}")
    averaged = {}
    for key, value in states[0].items():
        if value.is_floating_point():
            total = sum(w * s[key].to(torch.float64) for w, s in zip(weights, states))
            averaged[key] = total.to(torch.float32)
        else:
            averaged[key] = value.clone()
    first.nets.load_state_dict(averaged)
    return first, weights


def main(argv=None) -> int:
    from nfgan.inference import export_model, load_model
    from nfgan.checkpoint import CheckpointError

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--weights", type=float, nargs="+", default=None,
                    help="one weight per model (normalised to sum 1; default: equal)")
    args = ap.parse_args(argv)
    try:
        gens = [load_model(m) for m in args.models]
    except CheckpointError as e:
        ap.error(str(e))
    records = [{"source": str(m), "config_name": (g.info.get("config") or {}).get("name") or g.info.get("config_name"),
                "step": g.info.get("step"), "sources": ((g.info.get("config") or {}).get("data") or {}).get("sources")}
               for m, g in zip(args.models, gens)]
    learned = [g.info.get("train_subjects") for g in gens]
    subjects = None if any(s is None for s in learned) else sorted({str(p) for s in learned for p in s})
    try:
        g, weights = average_generators(gens, args.weights)
    except ValueError as e:
        ap.error(str(e))
    for r, w in zip(records, weights):
        r["weight"] = w
    out = export_model(g, args.out, train_subjects=subjects, averaged_from=records)
    print(f"wrote {out}: the average of {len(gens)} models ({', '.join(str(r['config_name']) for r in records)}); "
          + (f"{len(subjects)} training subjects recorded" if subjects is not None else
             "training subjects unknown, none recorded"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
