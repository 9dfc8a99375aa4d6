"""How much of the expression face-api still sees in a model's outputs do the loss's expression critics see?
(probe `push`'s follow-up measurement, docs/experiments.md.) For the screen's folders (every JAFFE and Yale person)
the leave-JAFFE-and-Yale-out `soup3` of seed 0 normalises the expressive inputs as `nfgan evaluate` does; each
critic's p_neutral on the outputs is compared with face-api's verdict (the per_face.csv of the screen): the
area under the ROC curve of p_neutral for "face-api calls the output neutral", and how many of the outputs face-api
calls expressive each critic puts under 0.5.

    python docs/results/push/critic_sight.py > docs/results/push/critic_sight.md
    python docs/results/push/critic_sight.py "LABEL=runs/critic.safetensors" ...   # these critics instead

(It checks first that face-api's verdicts on its outputs are the screen's.)
"""
import csv
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import mannwhitneyu

from nfgan.data.schema import is_expressive
from nfgan.inference.generator import load_model
from nfgan.models.auxiliary.expression_faceapi import ExpressionClassifier
from nfgan.models.auxiliary.neutral_critic import NeutralCritic
from nfgan.pixels import to_unit_batch

REPO = Path(__file__).resolve().parents[3]
MODEL = REPO / "runs/feat10_soup3_gated_seed0.safetensors"
CRITICS = {"nfgan critic without JAFFE and Yale": lambda: NeutralCritic.load(REPO / "runs/critic_no_jaffe_yale.safetensors"),
           "nfgan critic as shipped (learned JAFFE's and Yale's training people)": lambda: NeutralCritic.load(None),
           "human-models mini-Xception (FER-2013)": lambda: ExpressionClassifier("minixception")}


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half: Mann-Whitney's U over the pairs."""
    pos, neg = score[positive], score[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    return float(mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg)))


def main(argv: list[str]) -> int:
    g = load_model(MODEL)
    given = dict(a.split("=", 1) for a in argv)
    critics = ({k: NeutralCritic.load(REPO / v) for k, v in given.items()} if given
               else {k: f() for k, f in CRITICS.items()})
    print("| set | critic | expressive inputs | face-api expressive outputs | AUC | of those under p_neutral 0.5 |"
          " face-api neutral outputs under 0.5 |")
    print("|---|---|---|---|---|---|---|")
    for name in ("jaffe", "yale"):
        folder = REPO / f"out/{name}64"
        rows = {r["id"]: (i, r) for i, r in enumerate(csv.DictReader(open(folder / "manifest.csv")))}
        judged = [r for r in csv.DictReader(open(REPO / f"docs/results/push/seed0/{name}_every_person/per_face.csv"))
                  if r["model"] == "lodo_soup3_gated" and is_expressive(r["expression"])]
        idx = [rows[r["input_id"]][0] for r in judged]
        faces = np.load(folder / "faces.npy", mmap_mode="r")
        lms = np.load(folder / "landmarks.npy", mmap_mode="r")
        poses = [rows[r["input_id"]][1]["pose"] for r in judged]
        flipped = [rows[r["input_id"]][1].get("flipped", "0") for r in judged]
        out = g.normalize(np.asarray(faces[idx]), poses, flipped, landmarks=np.asarray(lms[idx]))
        neutral = np.array([float(r["neutral_faceapi"]) > 0.5 for r in judged])
        again = np.array([lab == "neutral" for lab in ExpressionClassifier("faceapi").predict_labels(out)])
        assert (again == neutral).all(), f"{name}: outputs differ from the screen's ({(again != neutral).sum()})"
        for label, critic in critics.items():
            with torch.no_grad():
                p = critic(to_unit_batch(out))
            col = list(getattr(critic, "labels", ())).index("neutral") if hasattr(critic, "labels") else 0
            p = p[:, col].numpy()
            print(f"| {name} | {label} | {len(judged)} | {int((~neutral).sum())} | {auc(p, neutral):.2f} | "
                  f"{int((p[~neutral] < 0.5).sum())} | {int((p[neutral] < 0.5).sum())} of {int(neutral.sum())} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
