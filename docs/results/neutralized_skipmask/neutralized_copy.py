"""Round 13 probe (docs/experiments.md): a copy of a training checkpoint whose stored config turns on the geometric
neutralisation of the generator's inputs (``data.neutralize_shape``) at inference, with a given map; the weights
are not touched. Kept in the repository to rerun round 13:

    python docs/results/neutralized_skipmask/neutralized_copy.py CHECKPOINT OUT [--map MAP]

Without ``--map`` the copy uses the map nfgan ships (``nfgan/assets/neutral_shape.safetensors``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--map", type=Path, default=None)
    args = ap.parse_args(argv)
    with safe_open(str(args.checkpoint), "pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    info = json.loads(meta["nfgan"])
    data = info["extra"]["config"]["data"]
    data["neutralize_shape"] = True
    data["neutral_shape_map"] = str(args.map.resolve()) if args.map else None
    meta["nfgan"] = json.dumps(info)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out), metadata=meta)
    print(f"wrote {args.out}: neutralize_shape on, map {data['neutral_shape_map'] or 'shipped'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
