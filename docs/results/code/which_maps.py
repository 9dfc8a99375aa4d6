"""Which of the U-Net's maps carry the residual expression (probe `code`'s follow-up measurement, docs/experiments.md):
for the outputs face-api calls expressive among the screen's expressive JAFFE and Yale inputs (every person; the
seed-0 leave-JAFFE-and-Yale-out `soup3`, as where.py), the generator runs again with some of the photo's encoder maps
replaced by those of the person's real neutral face (its own generator input), and face-api reads the output again:
how many turn neutral. The deep code = the maps at 4 px and coarser (all of them); a fine skip map (32, 16, 8 px) is
replaced inside a region only (the region's mask pooled to the map's size; the skip mask's gates still apply). A
diagnosis only (it uses the real neutral faces); nothing is chosen from it.

    python docs/results/code/which_maps.py > docs/results/code/which_maps.md
"""
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nfgan.inference.generator import load_model
from nfgan.models.auxiliary.expression_faceapi import ExpressionClassifier
from nfgan.models.unet import CODE_MAX_SIZE, expression_region_mask
from nfgan.pixels import to_uint8, to_unit_batch
from where import screen_inputs   # this folder's where.py (a script's folder is on sys.path)

REPO = Path(__file__).resolve().parents[3]
MODEL = REPO / "runs/feat10_soup3_gated_seed0.safetensors"


def run(gen, x: torch.Tensor, t: torch.Tensor, deep: bool, fine_region: np.ndarray | None,
        sides=(32, 16, 8)) -> torch.Tensor:
    """The U-Net's forward pass on ``x`` with the deep code and/or the fine skips of ``sides`` px inside
    ``fine_region`` taken from ``t``'s pass (eval mode)."""
    sx, _ = gen._encode(x)
    st, _ = gen._encode(t)
    skips = []
    for a, b in zip(sx, st):
        side = a.shape[-1]
        if side <= CODE_MAX_SIZE:
            skips.append(b if deep else a)
        elif fine_region is not None and side in sides:
            m = F.adaptive_avg_pool2d(torch.as_tensor(fine_region, dtype=torch.float32)[None, None], side)
            skips.append(a * (1 - m) + b * m)
        else:
            skips.append(a)
    h = gen.up[0](skips[-1])
    for k, u in enumerate(gen.up[1:], start=2):
        i = len(skips) - k
        skip = skips[i] * getattr(gen, f"skip_gate{i}") if i in gen.masked_skips else skips[i]
        h = u(torch.cat([h, skip], dim=1))
    return h


def main() -> int:
    g = load_model(MODEL)
    gen = g.nets["gen"].eval()
    faceapi = ExpressionClassifier("faceapi")
    m = {r: expression_region_mask(64, (r,)).numpy() for r in ("mouth", "brows", "eyes")}
    three = np.clip(m["mouth"] + m["brows"] + m["eyes"], 0, 1)
    cases = {"nothing (the output as it is)": (False, None), "deep code": (True, None),
             "fine skips, eyes": (False, m["eyes"]), "fine skips, mouth + brows": (False, np.clip(m["mouth"] + m["brows"], 0, 1)),
             "fine skips, outside mouth, brows, eyes": (False, 1 - three), "fine skips, everywhere": (False, np.ones((64, 64))),
             "deep code + fine skips, eyes": (True, m["eyes"]), "deep code + fine skips, everywhere": (True, np.ones((64, 64)))}
    for side in (32, 16, 8):
        cases[f"the {side} px skip only, everywhere"] = (False, np.ones((64, 64)), (side,))
        cases[f"the {side} px skip only, outside mouth, brows, eyes"] = (False, 1 - three, (side,))
    print("| set | outputs face-api calls expressive | maps taken from the real neutral face | turn neutral |")
    print("|---|---|---|---|")
    for name in ("jaffe", "yale"):
        judged, photos, neutral = screen_inputs(name)
        inputs, targets = g.generator_inputs(*photos), g.generator_inputs(*neutral)
        x, t = to_unit_batch(inputs), to_unit_batch(targets)
        with torch.no_grad():
            plain = to_uint8(run(gen, x, t, False, None))
        out = g.normalize(*photos[:3], landmarks=photos[3])
        # one pass of every face against normalize's batches of 64: other kernels, at most a gray level apart
        assert np.abs(plain.astype(int) - out).max() <= 1, "the pass differs from normalize's"
        expressive = np.array(faceapi.predict_labels(out)) != "neutral"
        assert (expressive == np.array([float(r["neutral_faceapi"]) <= 0.5 for r in judged])).all(), \
            f"{name}: face-api's verdicts differ from the screen's"
        for label, case in cases.items():
            with torch.no_grad():
                out = to_uint8(run(gen, x[expressive], t[expressive], *case))
            flips = int((np.array(faceapi.predict_labels(out)) == "neutral").sum())
            print(f"| {name} | {int(expressive.sum())} | {label} | {flips} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
