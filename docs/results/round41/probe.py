"""Round 41's probe (docs/experiments.md; kept here to rerun its numbers, not part of the package): turned faces
frontalised onto a prediction of the person's own frontal landmarks instead of the mean layout ``FRONTAL68``.

    python docs/results/round41/probe.py fit OUT.npz            # the map, and its landmark errors (printed)
    python docs/results/round41/probe.py evaluate OUT.npz ARGS  # nfgan evaluate ARGS with the own-shape warp
    python docs/results/round41/probe.py train OUT.npz ARGS     # nfgan train ARGS, the same (round 41b)

``fit``: ridge regression from a 3/4 face's 68 landmarks (as the generator sees them: mirrored where the input rule
mirrors, so the far side is on the right) to the same person's first frontal neutral face's landmarks made
symmetric (the mean of them and their mirror image), on London's training people (``out/london64``); the ridge
weight is chosen on the validation people's mean landmark error. ``evaluate``: every turned face is warped onto
its prediction (made symmetric) with the same piecewise-affine warp and mirror fill as ``nfgan.data.frontalize``."""
import sys

import numpy as np

from nfgan.data import frontalize as F
from nfgan.data.align import mirror_landmarks
from nfgan.data.dataset import PreparedDataset
from nfgan.data.generator_input import occluded_left
from nfgan.data.pairs import load_splits

S = 64
RIDGES = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)


def symmetric(lm):
    return 0.5 * (lm + mirror_landmarks(lm, S))


def pairs(ds, subjects):
    subj = np.asarray(ds.column("subject"))
    pose, expr = np.asarray(ds.column("pose")), np.asarray(ds.column("expression"))
    flipped = ds.column("flipped")
    mirrored = occluded_left(list(pose), flipped)
    lm = np.asarray(ds.landmarks, dtype=np.float64)
    x, y = [], []
    for s in subjects:
        ref = np.flatnonzero((subj == s) & (pose == "frontal") & (expr == "neutral"))
        if not len(ref):
            continue
        target = symmetric(lm[ref[0]])
        for i in np.flatnonzero((subj == s) & (np.char.find(pose.astype(str), "3quarter") >= 0)):
            seen = mirror_landmarks(lm[i], S) if mirrored[i] else lm[i]
            x.append(seen.ravel())
            y.append(target.ravel())
    return np.asarray(x), np.asarray(y)


def fit_ridge(x, y, ridge):
    mx, my = x.mean(0), y.mean(0)
    xc = x - mx
    w = np.linalg.solve(xc.T @ xc + ridge * np.eye(x.shape[1]), xc.T @ (y - my))
    return w, mx, my


def error(pred, y):
    return float(np.linalg.norm((pred - y).reshape(len(y), 68, 2), axis=2).mean())


def fit(out):
    ds = PreparedDataset("out/london64")
    sp = load_splits("london")
    xt, yt = pairs(ds, sp["train"])
    xv, yv = pairs(ds, sp["val"])
    template = (F.FRONTAL68 * (S - 1)).ravel()
    print(f"pairs: train {len(xt)}, val {len(xv)}; mean layout error val {error(np.tile(template, (len(yv), 1)), yv):.3f} px")
    best = None
    for r in RIDGES:
        w, mx, my = fit_ridge(xt, yt, r)
        e = error((xv - mx) @ w + my, yv)
        print(f"ridge {r:g}: val error {e:.3f} px (train {error((xt - mx) @ w + my, yt):.3f})")
        if best is None or e < best[0]:
            best = (e, r, w, mx, my)
    e, r, w, mx, my = best
    print(f"chosen ridge {r:g} (val error {e:.3f} px)")
    np.savez(out, w=w, mx=mx, my=my, ridge=r)


class OwnShape:
    def __init__(self, path):
        d = np.load(path)
        self.w, self.mx, self.my = d["w"], d["mx"], d["my"]
        self.border = F.crop_border(S)
        yy, xx = np.mgrid[0:S, 0:S]
        self.pix = np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float64)
        self.f = F.frontalizer(S)

    def __call__(self, face, lm, fill):
        dst = symmetric(((lm.ravel() - self.mx) @ self.w + self.my).reshape(68, 2))
        dst = np.concatenate([dst[list(F.WARP_POINTS)], self.border])
        corners, bary, inside = F.delaunay_barycentric(dst, self.pix)
        if not inside.all():
            raise RuntimeError("own-shape mesh does not cover the crop")
        src = np.concatenate([lm[list(F.WARP_POINTS)], self.border])
        q = np.einsum("pk,pkd->pd", bary, src[corners])
        out = F.bilinear_sample(np.asarray(face), q).reshape(S, S)
        if fill == "mirror":
            out = self.f.symmetric_fill(out, F.visible_side(lm))
        return np.clip(np.round(out), 0, 255).astype(np.uint8)


def patch(path):
    import nfgan.data.generator_input as G

    own = OwnShape(path)

    def frontalize_batch(faces, landmarks, poses, mirrored=None, fill="mirror"):
        faces = np.asarray(faces)
        out = np.array(faces, dtype=np.uint8, copy=True)
        for i, pose in enumerate(poses):
            if F.is_turned(pose):
                lm = np.asarray(landmarks[i], dtype=np.float64)
                lm = mirror_landmarks(lm, S) if mirrored is not None and mirrored[i] else lm
                out[i] = own(faces[i], lm, fill)
        return out

    G.frontalize_batch = frontalize_batch


if __name__ == "__main__":
    if sys.argv[1] == "fit":
        fit(sys.argv[2])
    else:
        patch(sys.argv[2])
        from nfgan.cli import main

        sys.exit(main([sys.argv[1], *sys.argv[3:]]))
