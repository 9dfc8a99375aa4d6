"""Session 41 probe `distil` (docs/experiments.md, "Distilling the identity pull into the weights (probe)"): can
the generator learn what the identity pull does, so that the plain network (and its ONNX graph) keeps more of a
turned photo's identity at network speed?

Teacher: the shipped default with the pull its file records. Student: the same weights, fine-tuned (eval mode:
BatchNorm statistics and dropout as at inference) by Adam on the L1 distance between its output and the teacher's
output, for the generator inputs of *training* people only: London's real photos (every view) and the SFM-turned
faces of the London, CK+ and canada training people (the turned sources of the default's second stages) - turned
inputs with the teacher's pulled outputs as targets - and the frontal faces of every set's training people with the
teacher's plain outputs as targets (so frontal behaviour stays). Written without the pull (``identity_pull`` off),
then scored beside the default with and without the pull on the validation people (``probe.py score``).

    python docs/results/distil/probe.py fit      # runs/distil_student.safetensors (+ docs/results/distil/fit.json)
    python docs/results/distil/probe.py score    # docs/results/distil/probe/
"""
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))
from nfgan.cli import main as nfgan  # noqa: E402
from nfgan.data.frontalize import is_turned  # noqa: E402
from nfgan.inference.generator import default_model_path, export_model, load_model  # noqa: E402
from nfgan.pixels import to_unit_batch  # noqa: E402

R = REPO / "docs/results/distil"
STUDENT = REPO / "runs/distil_student.safetensors"
PLAIN = REPO / "runs/default_no_pull.safetensors"
#: (folder, shipped split name, turned only)
SOURCES = (("out/london64", "london", False), ("out/london64_turned", "london", True),
           ("out/ckplus_wn64_turned", "ckplus_with_neutral", True), ("out/canada64_turned", "canada", True),
           ("out/ckplus_wn64", "ckplus_with_neutral", False), ("out/jaffe64", "jaffe", False),
           ("out/yale64", "yale", False), ("out/canada64", "canada", False))
MAX_TURNED, MAX_FRONTAL = 2400, 1200     # faces drawn (seed 0); London's real 3/4 photos always in
STEPS, BATCH, LR = 600, 32, 5e-5


def training_faces(g):
    """Generator inputs and the teacher's outputs for the training people's faces (uint8)."""
    rng = np.random.default_rng(0)
    picked = {True: [], False: []}
    for folder, split, turned_only in SOURCES:
        people = set(json.load(open(REPO / f"src/nfgan/assets/splits/{split}.json"))["train"])
        rows = list(csv.DictReader(open(REPO / folder / "manifest.csv")))
        for i, r in enumerate(rows):
            if r["subject"] in people and (is_turned(r["pose"]) or not turned_only):
                picked[is_turned(r["pose"])].append((folder, i, r["pose"], r.get("flipped", "0")))
    chosen = []
    for turned, cap in ((True, MAX_TURNED), (False, MAX_FRONTAL)):
        is_real = [turned and p[0] == "out/london64" for p in picked[turned]]
        real = [p for p, r in zip(picked[turned], is_real) if r]
        rest = [p for p, r in zip(picked[turned], is_real) if not r]
        take = rng.choice(len(rest), size=min(cap - len(real), len(rest)), replace=False)
        chosen += real + [rest[k] for k in sorted(take)]
    inputs, targets, turned = [], [], []
    for folder in dict.fromkeys(c[0] for c in chosen):
        mine = [c for c in chosen if c[0] == folder]
        idx = [c[1] for c in mine]
        faces = np.load(REPO / folder / "faces.npy", mmap_mode="r")
        lms = np.load(REPO / folder / "landmarks.npy", mmap_mode="r")
        photos, poses, flipped = np.asarray(faces[idx]), [c[2] for c in mine], [c[3] for c in mine]
        lm = np.asarray(lms[idx])
        inputs.append(g.generator_inputs(photos, poses, flipped, lm))
        targets.append(g.normalize(photos, poses, flipped, landmarks=lm))
        turned += [is_turned(p) for p in poses]
        print(f"{folder}: {len(idx)} faces ({sum(is_turned(p) for p in poses)} turned)", flush=True)
    return np.concatenate(inputs), np.concatenate(targets), np.array(turned)


def fit() -> int:
    torch.manual_seed(0)
    g = load_model(default_model_path())
    t0 = time.time()
    cache = REPO / "runs/distil_faces.npz"     # the teacher's outputs, kept for a rerun
    if cache.is_file():
        z = np.load(cache)
        x, y, turned = z["x"], z["y"], z["turned"]
    else:
        x, y, turned = training_faces(g)
        np.savez(cache, x=x, y=y, turned=turned)
    t1 = time.time()
    gen = g.nets["gen"]
    gen.eval().requires_grad_(True)            # load_model hands out frozen networks
    opt = torch.optim.Adam(gen.parameters(), lr=LR, betas=(0.5, 0.999))
    rng = np.random.default_rng(1)
    log = []
    with torch.enable_grad():
        for step in range(STEPS):
            b = rng.choice(len(x), size=BATCH, replace=False)
            loss = (gen(to_unit_batch(x[b])) - to_unit_batch(y[b])).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            log.append(loss.item())
            if step % 100 == 0 or step == STEPS - 1:
                print(f"step {step}: L1 {np.mean(log[-100:]):.4f}", flush=True)
    export_model(g, STUDENT, identity_pull=False)
    export_model(load_model(default_model_path()), PLAIN, identity_pull=False)
    R.mkdir(parents=True, exist_ok=True)
    json.dump({"faces": len(x), "turned": int(turned.sum()), "steps": STEPS, "batch": BATCH, "lr": LR,
               "l1_first_100": float(np.mean(log[:100])), "l1_last_100": float(np.mean(log[-100:])),
               "teacher_seconds": round(t1 - t0, 1), "fit_seconds": round(time.time() - t1, 1)},
              open(R / "fit.json", "w"), indent=1)
    print(open(R / "fit.json").read())
    return 0


def score() -> int:
    import generalisation

    models = [f"default={default_model_path()}", f"default_no_pull={PLAIN}", f"distil={STUDENT}"]
    for name, folder, split in generalisation.TURNED_SETS:
        part = "london" if name == "london" else "turned"
        nfgan(["evaluate", *models, "--data", str(REPO / folder), "--splits", split, "--split", "val",
               "--calibration-split", "all", "--out", str(R / "probe" / part / f"{name}_val"), "--no-figures",
               "--quiet", "--kid-subsets", "50"])
    return 0


if __name__ == "__main__":
    sys.exit({"fit": fit, "score": score}[sys.argv[1]]())
