"""How far the U-Net's deep code of a photo lies from the code of the same person's real neutral face (probe `code`,
docs/experiments.md): for each model, the mean of `nfgan.models.losses.code_invariance_loss` (the maps at 4 px and
coarser; BatchNorm in eval mode, as at inference) between each frontal photo's code and its real neutral target's,
per set and input kind (expressive photos, neutral variants), for every person of the screen's JAFFE and Yale folders
(people the leave-out models never saw) and for the validation and training people of CK+ and London (both in every
model's training). Markdown on stdout.

    python docs/results/code/code_sight.py NAME=MODEL.safetensors ...
    python docs/results/code/code_sight.py --max-size 16 NAME=MODEL.safetensors ...   # the 16 and 8 px maps too
"""
import csv
import json
import sys
from pathlib import Path

import numpy as np
import torch

from nfgan.data.schema import is_expressive
from nfgan.inference.generator import load_model
from nfgan.models.losses import code_invariance_loss

REPO = Path(__file__).resolve().parents[3]
#: (set, prepared folder, splits file, split): who is measured
GROUPS = [("jaffe", "out/jaffe64", "docs/results/lodo_jaffe_yale/jaffe_every_person.json", "test"),
          ("yale", "out/yale64", "docs/results/lodo_jaffe_yale/yale_every_person.json", "test"),
          ("ckplus", "out/ckplus_wn64", "src/nfgan/assets/splits/ckplus_with_neutral.json", "val"),
          ("ckplus", "out/ckplus_wn64", "src/nfgan/assets/splits/ckplus_with_neutral.json", "train"),
          ("london", "out/london64", "src/nfgan/assets/splits/london.json", "val"),
          ("london", "out/london64", "src/nfgan/assets/splits/london.json", "train")]


def pairs(folder: Path, people: set[str]):
    """Frontal, unflipped photos of ``people`` with the index of their real frontal neutral face (the first one)."""
    rows = list(csv.DictReader(open(folder / "manifest.csv")))
    target = {}
    for i, r in enumerate(rows):
        if r["subject"] in people and r["pose"] == "frontal" and r.get("flipped", "0") in ("0", "") \
                and r["expression"] == "neutral" and r["subject"] not in target:
            target[r["subject"]] = i
    out = []
    for i, r in enumerate(rows):
        if r["subject"] in target and r["pose"] == "frontal" and r.get("flipped", "0") in ("0", "") \
                and i != target[r["subject"]]:
            out.append((i, target[r["subject"]], "expressive" if is_expressive(r["expression"]) else "neutral"))
    return out


def codes(gen, faces: np.ndarray, max_size: int) -> list[torch.Tensor]:
    x = torch.as_tensor(faces, dtype=torch.float32)[:, None] / 127.5 - 1.0
    with torch.no_grad():
        return gen.deep_codes(x, max_size)


def main(argv: list[str]) -> int:
    max_size = 4
    if argv[:1] == ["--max-size"]:
        max_size, argv = int(argv[1]), argv[2:]
    models = dict(a.split("=", 1) for a in argv)
    gens = {}
    for name, path in models.items():
        gen = load_model(REPO / path).nets["gen"]
        gen.eval()
        gens[name] = gen
    print("| set | people | photos | kind | " + " | ".join(models) + " |")
    print("|---|---|---|---|" + "---|" * len(models))
    for name, folder, split_file, split in GROUPS:
        splits = json.load(open(REPO / split_file))
        people = set(splits[split])
        faces = np.load(REPO / folder / "faces.npy", mmap_mode="r")
        ps = pairs(REPO / folder, people)
        for kind in ("expressive", "neutral"):
            sel = [(i, t) for i, t, k in ps if k == kind]
            if not sel:
                continue
            xi, ti = [i for i, _ in sel], [t for _, t in sel]
            cells = []
            for gen in gens.values():
                cx, ct = codes(gen, np.asarray(faces[xi]), max_size), codes(gen, np.asarray(faces[ti]), max_size)
                per = [float(code_invariance_loss([c[j:j + 1] for c in cx], [c[j:j + 1] for c in ct]))
                       for j in range(len(sel))]
                cells.append(f"{np.mean(per):.3f}")
            print(f"| {name} | {split} ({len(people)}) | {len(sel)} | {kind} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
