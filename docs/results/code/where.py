"""Where the residual expression lives (probe `code`'s motivating measurement, docs/experiments.md): for the outputs
face-api calls expressive among the screen's expressive JAFFE and Yale inputs (every person; the seed-0
leave-JAFFE-and-Yale-out `soup3`, as probe `push`'s screen), one region of the output is replaced by the same region
of the person's real neutral face (soft masks of `nfgan.models.unet.expression_region_mask`) and face-api reads the
result again: how many turn neutral. A diagnosis only (it uses the real neutral faces); nothing is chosen from it.

    python docs/results/code/where.py > docs/results/code/where.md
"""
import csv
from pathlib import Path

import numpy as np

from nfgan.data.schema import is_expressive
from nfgan.inference.generator import load_model
from nfgan.models.auxiliary.expression_faceapi import ExpressionClassifier
from nfgan.models.unet import expression_region_mask

REPO = Path(__file__).resolve().parents[3]
MODEL = REPO / "runs/feat10_soup3_gated_seed0.safetensors"


def regions() -> dict[str, np.ndarray]:
    m = {r: expression_region_mask(64, (r,)).numpy() for r in ("mouth", "brows", "eyes")}
    three = np.clip(m["mouth"] + m["brows"] + m["eyes"], 0, 1)
    return {**m, "mouth + brows": np.clip(m["mouth"] + m["brows"], 0, 1), "mouth + brows + eyes": three,
            "the rest (outside the three)": 1 - three, "whole face": np.ones((64, 64))}


def screen_inputs(name: str):
    """The screen's expressive inputs of set ``name`` (every person; the rows of `soup3` in probe `push`'s per_face.csv):
    the rows, then (photos, poses, flips, landmarks) of the inputs and the same of their real neutral faces."""
    folder = REPO / f"out/{name}64"
    rows = list(csv.DictReader(open(folder / "manifest.csv")))
    at = {r["id"]: i for i, r in enumerate(rows)}
    judged = [r for r in csv.DictReader(open(REPO / f"docs/results/push/seed0/{name}_every_person/per_face.csv"))
              if r["model"] == "lodo_soup3_gated" and is_expressive(r["expression"])]
    faces = np.load(folder / "faces.npy", mmap_mode="r")
    lms = np.load(folder / "landmarks.npy", mmap_mode="r")

    def pick(ix):
        return (np.asarray(faces[ix]), [rows[i]["pose"] for i in ix], [rows[i].get("flipped", "0") for i in ix],
                np.asarray(lms[ix]))

    return judged, pick([at[r["input_id"]] for r in judged]), pick([at[r["target_id"]] for r in judged])


def main() -> int:
    g = load_model(MODEL)
    faceapi = ExpressionClassifier("faceapi")
    masks = regions()
    print("| set | expressive inputs | outputs face-api calls expressive (by input class) | region pasted | "
          "turn neutral |")
    print("|---|---|---|---|---|")
    for name in ("jaffe", "yale"):
        judged, (photos, poses, flips, lms), neutral = screen_inputs(name)
        out = np.asarray(g.normalize(photos, poses, flips, landmarks=lms)).astype(np.float32)
        real = neutral[0].astype(np.float32)
        expressive = np.array(faceapi.predict_labels(out.astype(np.uint8))) != "neutral"
        assert (expressive == np.array([float(r["neutral_faceapi"]) <= 0.5 for r in judged])).all(), \
            f"{name}: face-api's verdicts differ from the screen's"
        classes = sorted({judged[j]["expression"] for j in np.flatnonzero(expressive)})
        by = ", ".join(f"{c} {sum(judged[j]['expression'] == c for j in np.flatnonzero(expressive))}" for c in classes)
        for label, m in masks.items():
            mixed = (out * (1 - m) + real * m).round().clip(0, 255).astype(np.uint8)[expressive]
            flips = int((np.array(faceapi.predict_labels(mixed)) == "neutral").sum())
            print(f"| {name} | {len(judged)} | {int(expressive.sum())} ({by}) | {label} | {flips} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
