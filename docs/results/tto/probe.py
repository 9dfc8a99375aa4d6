"""Session 40 probe `tto` (docs/experiments.md, "Pulling the output towards the photo's identity at inference
(probe)"): the shipped default, whose generator's deepest feature maps are then moved, for each face, by a few
gradient steps so that dlib's descriptor of the output comes nearer to dlib's descriptor of the input photo (the
aligned photo, before frontalisation: dlib reads a 3/4 photo's identity well where the frontalised warp loses it).
dlib is L_id's network, not an evaluator; faceres and faceres_deep judge. The decoder's weights are not changed:
only the 1 x 1 bottleneck and the 2 x 2 and 4 x 4 maps the decoder receives, for 5 steps (`tto5`) or 20 (`tto20`).

Scored with the inference step on the validation people beside the default as shipped, with the commands
benchmarks/generalisation.py runs, in one process whose Generator.normalize optimises for the model names that ask
for it. A probe: nothing is chosen or shipped from it (the optimisation is not a package option).

    python docs/results/tto/probe.py --sets london,ckplus,jaffe,yale     # writes docs/results/tto/probe/
    python docs/results/tto/probe.py --sets london,ckplus,jaffe,yale --variants tto5,tto5_mask,tto5_critic
    python docs/results/tto/probe.py --sets ckplus_turned,jaffe_turned,yale_turned,canada_turned --turned \
        --variants tto5,tto5_mask,tto5_critic
    python docs/results/tto/probe.py evaluate [--critic FILE] NAME=MODEL ... --data ...   # nfgan evaluate (round 46)
"""
import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))
import generalisation  # noqa: E402
from nfgan.cli import main as nfgan  # noqa: E402
from nfgan.inference.generator import Generator, default_model_path  # noqa: E402
from nfgan.models.auxiliary.feature_nets import DlibIdentityNet  # noqa: E402
from nfgan.models.auxiliary.neutral_critic import NeutralCritic  # noqa: E402
from nfgan.models.unet import expression_region_mask  # noqa: E402
from nfgan.pixels import to_uint8, to_unit_batch  # noqa: E402

#: indices of the encoder outputs (gen.down[i]) that get a per-face offset: 5 = the 1 x 1 bottleneck, 4 = the 2 x 2
#: map, 3 = the 4 x 4 map (64 px faces). The bottleneck alone barely moves the output (a U-Net's decoder reads its
#: skips): 20 steps took dlib's mean distance to the photo on 32 London 3/4 faces from 0.381 to 0.379 only.
LEVELS = (3, 4, 5)
#: model name fragment -> (Adam steps per batch of faces, guard against the photo's expression), the longest
#: fragment first. Guards (second part of the probe): "mask" keeps the default's output in the mouth and brow
#: regions (the skip mask's soft regions, nfgan.models.unet.expression_region_mask) and lets the pull change only
#: the rest; "critic" adds nfgan's expression critic's -log p_neutral (CRITIC_WEIGHT; trained on the labelled
#: sets' training people, not an evaluator) to the objective.
VARIANTS = {"tto5_mask": (5, "mask"), "tto5_critic": (5, "critic"), "tto20": (20, None), "tto5": (5, None)}
CRITIC_WEIGHT = 1.0
#: the critic file (None: the one nfgan ships, which learned every labelled set's training people); round 46 names
#: critics that never saw the sets left out of the model it scores
CRITIC_PATH: list = [None]
LR = 0.05           # Adam step size on the offsets (the bottleneck's activations are of order 1)
OUT = REPO / "docs/results/tto/probe"
_NETS: dict = {}


def dlib() -> DlibIdentityNet:
    if "dlib" not in _NETS:
        _NETS["dlib"] = DlibIdentityNet().eval()
    return _NETS["dlib"]


def critic() -> NeutralCritic:
    if "critic" not in _NETS:
        _NETS["critic"] = NeutralCritic.load(CRITIC_PATH[0])
    return _NETS["critic"]


def pulled(gen: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, steps: int, guard: str | None,
           log: list) -> torch.Tensor:
    """``gen``'s output for ``x`` with offsets on the encoder outputs ``LEVELS``, fitted by ``steps`` Adam steps so
    that dlib's descriptor of the output nears ``target`` (B x 128), under ``guard`` (:data:`VARIANTS`)."""
    net = dlib()
    with torch.no_grad():
        maps = []
        h = x
        for d in gen.down:
            h = d(h)
            maps.append(h)
        y0 = gen(x)
    keep = expression_region_mask(x.shape[-1])[None, None] if guard == "mask" else None
    offsets = {i: torch.zeros_like(maps[i], requires_grad=True) for i in LEVELS}
    hooks = [gen.down[i].register_forward_hook(lambda m, a, out, i=i: out + offsets[i]) for i in LEVELS]
    opt = torch.optim.Adam(offsets.values(), lr=LR)
    frozen = [(p, p.requires_grad) for p in gen.parameters()]
    for p, _ in frozen:
        p.requires_grad_(False)
    try:
        for step in range(steps + 1):
            y = gen(x)
            if keep is not None:
                y = keep * y0 + (1 - keep) * y
            dist = (net.descriptor(y) - target).norm(dim=1)
            if step == 0 or step == steps:
                log.append(dist.detach().mean().item())
            if step == steps:
                return y.detach()
            loss = dist
            if guard == "critic":
                loss = loss - CRITIC_WEIGHT * torch.log(critic()(y)[:, 0].clamp_min(1e-6))
            opt.zero_grad()
            loss.sum().backward()
            opt.step()
    finally:
        for hk in hooks:
            hk.remove()
        for p, flag in frozen:
            p.requires_grad_(flag)


def optimising_normalize(self, images_u8, poses=None, flipped=None, batch_size=64, progress=False,
                         desc="normalize", landmarks=None, channels_last=False, bf16=False):
    name = Path(str(self.info.get("source", ""))).name
    variant = next((v for k, v in VARIANTS.items() if k in name), None)
    if variant is None:
        return Generator._plain_normalize(self, images_u8, poses, flipped, batch_size, progress, desc, landmarks)
    gen = self.nets["gen"]
    inputs = self.generator_inputs(images_u8, poses, flipped, landmarks)
    out = np.empty((len(inputs),) + inputs.shape[-2:], dtype=np.uint8)
    log: list = []
    for s in range(0, len(inputs), batch_size):
        with torch.no_grad():
            target = dlib().descriptor(to_unit_batch(images_u8[s:s + batch_size]))
        with torch.enable_grad():
            y = pulled(gen, to_unit_batch(inputs[s:s + batch_size]), target, *variant, log)
        out[s:s + batch_size] = to_uint8(y)
    print(f"{name}: dlib distance to the photo, before -> after, per batch: "
          + ", ".join(f"{a:.3f} -> {b:.3f}" for a, b in zip(log[::2], log[1::2])), flush=True)
    return out


def evaluate(argv: list) -> int:
    """``evaluate [--critic FILE] ARGS...``: ``nfgan evaluate ARGS...`` with the optimisation for the model files
    whose names ask for it (round 46's commands)."""
    if argv[:1] == ["--critic"]:
        CRITIC_PATH[0], argv = argv[1], argv[2:]
    torch.manual_seed(0)
    Generator._plain_normalize = Generator.normalize
    Generator.normalize = optimising_normalize
    return nfgan(["evaluate", *argv])


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["evaluate"]:
        return evaluate(argv[1:])
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="london")
    ap.add_argument("--variants", default="tto20,tto5", help="VARIANTS keys, beside the default as shipped")
    ap.add_argument("--turned", action="store_true", help="the turned sets' 3/4 inputs (generalisation --turned)")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    Generator._plain_normalize = Generator.normalize
    Generator.normalize = optimising_normalize
    runs = REPO / "runs"
    models = ["default=" + str(default_model_path())]
    for k in args.variants.split(","):       # copies of the shipped file whose names ask for the optimisation
        dst = runs / f"default_{k}.safetensors"
        shutil.copyfile(default_model_path(), dst)
        models.append(f"default_{k}={dst}")
    sets = args.sets.split(",")
    for name, folder, split in generalisation.TURNED_SETS if args.turned else generalisation.SETS:
        if name in sets:
            nfgan(["evaluate", *models, "--data", str(REPO / folder), "--splits", split, "--split", "val",
                   "--calibration-split", "all", "--out", str(OUT / f"{name}_val"), "--no-figures", "--quiet",
                   "--kid-subsets", "50"])
    return generalisation.main([*models, "--split", "val", "--sets", ",".join(sets), "--out", str(OUT), "--rescore",
                                *(["--turned"] if args.turned else [])])


if __name__ == "__main__":
    sys.exit(main())
