"""Session 39 probe `tta` (docs/experiments.md, "Averaging shifted passes at inference (probe)"): the shipped
default with each generator input also run shifted by a pixel or two (the frame padded by its edge pixels), every
output shifted back and the outputs averaged. Scored with the inference step on the validation people of London,
CK+, JAFFE and Yale beside the default as shipped, with the commands benchmarks/generalisation.py runs, in one
process whose Generator.forward averages for the model names that ask for it. A probe: nothing is chosen or
shipped from it (the shifts are not a package option).

    python docs/results/tta/probe.py          # writes docs/results/tta/probe/
"""
import shutil
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))
import generalisation  # noqa: E402
from nfgan.cli import main as nfgan  # noqa: E402
from nfgan.inference.generator import Generator, default_model_path  # noqa: E402

#: model file name fragment -> the (dy, dx) shifts averaged
SHIFTS = {"tta5": [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)],
          "tta9": [(dy, dx) for dy in (-2, 0, 2) for dx in (-2, 0, 2)]}
OUT = REPO / "docs/results/tta/probe"


def shift(t: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``t`` (B x C x H x W) moved down by dy and right by dx, the uncovered border filled with edge pixels."""
    p = max(abs(dy), abs(dx))
    if p == 0:
        return t
    h, w = t.shape[-2:]
    return F.pad(t, (p, p, p, p), mode="replicate")[..., p - dy:p - dy + h, p - dx:p - dx + w]


def averaged_forward(self, x):
    shifts = next((s for k, s in SHIFTS.items() if k in Path(str(self.info.get("source", ""))).name), None)
    if shifts is None:
        return self._run(self.nets, x)
    return torch.stack([shift(self._run(self.nets, shift(x, dy, dx)), -dy, -dx) for dy, dx in shifts]).mean(0)


def main() -> int:
    Generator.forward = averaged_forward
    runs = REPO / "runs"
    models = ["default=" + str(default_model_path())]
    for k in SHIFTS:       # copies of the shipped file whose names ask for the averaging
        dst = runs / f"default_{k}.safetensors"
        shutil.copyfile(default_model_path(), dst)
        models.append(f"default_{k}={dst}")
    sets = ("london", "ckplus", "jaffe", "yale")
    for name, folder, split in generalisation.SETS:
        if name in sets:
            nfgan(["evaluate", *models, "--data", str(REPO / folder), "--splits", split, "--split", "val",
                   "--calibration-split", "all", "--out", str(OUT / f"{name}_val"), "--no-figures", "--quiet",
                   "--kid-subsets", "50"])
    return generalisation.main([*models, "--split", "val", "--sets", ",".join(sets), "--out", str(OUT), "--rescore"])


if __name__ == "__main__":
    sys.exit(main())
