"""Subject-independent cross-validation of the FER network (paper Sec. 5.4, Table 3 protocol).

Variants (``--variant``):
* ``softmax``  - the two-branch net trained with softmax cross-entropy only (tuplet weight 0);
* ``2b``       - 2B[N+M]Softmax: cross-entropy + ``tuplet_weight`` x adaptive (N+M)-tuplet clusters loss;
* ``2b_aug``   - ``2b`` plus NFGAN neutral references of the training subjects as extra training faces
  (``nfgan.fer.augment``, Sec. 5.4).

All variants share the batch construction (``TupletBatchSampler``), the crops and the fixed schedule, so
they differ only in their losses and training items. No model selection on the test fold: every fold trains
for ``epochs`` epochs with a cosine learning-rate schedule and the last weights are tested.

Per image: aligned 64x64 face -> ``fer_normalize`` -> ten 60x60 training crops (``five_crops`` + flips, one
drawn at random each time the image is used) / the centre crop at test time (Sec. 5.1).

Run directory (``--out``)::

    config.yaml              resolved configuration (+ data, folds, variant, augment source)
    folds/fold_KK.json       one finished fold: accuracy, per-class accuracy, confusion, time, predictions
                             (per test face: id, true, pred and the class probabilities, ``probs``)
    metrics.jsonl            one line per finished fold (rebuilt from folds/ after each fold)
    confusion_fold_KK.csv    per-fold confusion matrix (rows: true class, columns: predicted)
    confusion.csv/.png       confusion matrix summed over the finished folds (counts + row-normalised plot)
    summary.json             mean/std accuracy over folds, pooled per-class accuracy, folds done

Resumable: a fold whose ``folds/fold_KK.json`` exists is skipped; a run dir made with a different
configuration is refused rather than mixed. Every file is written atomically (``nfgan.atomic``).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.nn import functional as F
from tqdm import tqdm

from nfgan.atomic import write_bytes, write_text
from nfgan.config import ConfigError, defaults, load, nonneg, opt, positive
from nfgan.data.dataset import PreparedDataset
from nfgan.device import resolve_device
from nfgan.fer.augment import AugmentSource, check_no_leak
from nfgan.fer.folds import load_folds
from nfgan.fer.model import TRUNKS, FERNet
from nfgan.fer.sampler import REFERENCE_ONLY, TupletBatchSampler, mine_tuplets
from nfgan.fer.tuplet_loss import TupletClustersLoss
from nfgan.data.photometric import center_crop, fer_normalize, five_crops
from nfgan.data.schema import EXPRESSIONS

VARIANTS = ("softmax", "2b", "2b_aug")


def _classes_check(value) -> str | None:
    if value == "auto" or (isinstance(value, list) and value and all(isinstance(c, str) for c in value)):
        return None
    return "must be 'auto' or a list of expression names"


#: the FER options (``nfgan.config`` schema); ``DEFAULTS`` are their default values
SCHEMA = {
    "crop": opt(60, low=8),               # crop side (Sec. 5.1)
    "epochs": opt(25, low=1),
    "batch_size": opt(64, low=2),
    "lr": positive(0.002),
    "weight_decay": nonneg(0.0005),
    "tuplet_weight": nonneg(0.5),         # joint loss = CE + tuplet_weight * L_tuplet (variants 2b, 2b_aug)
    "n_queries": opt(4, low=1),           # query expressions per batch
    "n_pos": opt(4, low=1),               # N
    "n_neg": opt(8, low=1),               # M
    "tau_init": opt(1.0),
    "beta": nonneg(0.5),
    "positive_mining": opt("hard", choices=("hard", "easy")),
    "embed_dim": opt(64, low=1),
    "width": opt(16, low=1),
    "trunk": opt("plain", choices=TRUNKS),  # plain, or a pretrained trunk fine-tuned (docs/fer.md)
    "trunk_input": opt(None, "int", nullable=True, low=8),  # resize the crop to this side before the trunk
    "fc_dim": opt(384, low=1),
    "dropout": nonneg(0.4, high=0.99),
    "classes": opt("auto", "any", check=_classes_check),  # or a list of expression names (schema order)
    "seed": opt(0, low=0),
    "threads": opt(2, low=1),
    "device": "cpu",       # where the nets train and predict: "cpu", "cuda" or "cuda:N" (not part of the run's
                           # configuration hash: a run can be resumed on another device)
    # training-time geometric jitter (0 = the paper's ten fixed crops: five_crops + flips)
    "rotate": nonneg(0.0),     # max rotation, degrees (uniform in +-rotate)
    "scale": nonneg(0.0, high=0.9),  # max relative zoom (uniform in 1 +- scale)
    "shift": nonneg(0.0),      # max translation of the crop window, pixels (uniform in +-shift)
    "tta": False,          # test time: average the softmax over the ten crops instead of the centre crop
    "val_fraction": nonneg(0.15, high=0.95),  # share of each fold's training subjects held out by --validate
    "references_per_subject": opt(0, low=0),  # 2b_aug: NFGAN references kept per training subject (0 = all)
    "extra_data": opt([], "list[path]"),  # prepared folders of other datasets added to every fold's training
                           # set (paths relative to the config file); never tested on
}
DEFAULTS = defaults(SCHEMA)


#: options added after run directories existed, with the default that earlier runs implicitly used. (The
#: options removed since - trunk_lr_scale, label_smoothing, ensemble, references_as - were listed here too: at
#: their defaults they never entered a run's hash, so dropping them leaves every kept run's hash as it was.)
LATER_OPTIONS = {"trunk": "plain", "trunk_input": None, "extra_data": []}


class FERConfigError(ConfigError):
    pass


def load_config(path: str | Path | None, overrides: dict | None = None, sets=None) -> dict:
    """The FER options: defaults <- ``base:`` files <- ``path`` <- ``overrides`` (``None`` values ignored) <-
    ``sets`` (``["epochs=5"]``), checked by ``nfgan.config`` (errors name the file and the option)."""
    try:
        return load(SCHEMA, path, {k: v for k, v in (overrides or {}).items() if v is not None}, sets)
    except ConfigError as e:
        raise FERConfigError(str(e)) from None


def class_list(dataset: PreparedDataset, classes) -> list[str]:
    present = set(dataset.column("expression"))
    if classes == "auto":
        ordered = [e for e in EXPRESSIONS if e in present] + sorted(present - set(EXPRESSIONS))
        return ordered
    missing = [c for c in classes if c not in present]
    if missing:
        raise FERConfigError(f"{dataset.root}: classes {missing} have no images")
    return list(classes)


def normalise_all(images: np.ndarray) -> np.ndarray:
    """fer_normalize every uint8 face -> float32 N x S x S."""
    return np.stack([fer_normalize(np.asarray(im, dtype=np.uint8)) for im in images]).astype(np.float32)


def confusion_matrix(true: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (true, pred), 1)
    return cm


def per_class_accuracy(cm: np.ndarray) -> list[float | None]:
    return [float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None for i in range(len(cm))]


def jitter_crops(faces: torch.Tensor, crop: int, rotate: float, scale: float, shift: float,
                 generator: torch.Generator) -> torch.Tensor:
    """Random ``crop`` x ``crop`` views of B x C x S x S faces: rotation, zoom, shift and a mirror flip.

    One affine map per face (shared by its C channels), sampled bilinearly (border padding) straight into the
    crop, so the identity map with no jitter is exactly the centre crop.
    """
    b, side = faces.shape[0], faces.shape[-1]
    u = lambda: torch.rand(b, generator=generator) * 2 - 1  # noqa: E731  uniform in [-1, 1]
    angle = u() * math.radians(rotate)
    zoom = 1.0 / (1.0 + u() * scale)          # > 1 samples a larger window = zoom out
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    k = crop / side                            # the crop window in the face's normalised coordinates
    cos, sin = torch.cos(angle) * zoom * k, torch.sin(angle) * zoom * k
    theta = torch.stack([torch.stack([cos * flip, -sin, u() * shift * 2 / side], 1),
                         torch.stack([sin * flip, cos, u() * shift * 2 / side], 1)], 1)
    # the random draws stay on the CPU generator (the same views on every device); the sampling runs where
    # the faces are
    grid = F.affine_grid(theta.to(faces.device), [b, faces.shape[1], crop, crop], align_corners=False)
    return F.grid_sample(faces, grid, mode="bilinear", padding_mode="border", align_corners=False)


def net_args(cfg: dict, n_classes: int) -> dict:
    """The ``FERNet`` arguments that ``cfg`` sets (``nfgan.fer.classifier`` stores them with a saved model)."""
    return {"n_classes": n_classes, "embed_dim": cfg["embed_dim"], "width": cfg["width"], "fc_dim": cfg["fc_dim"],
            "dropout": cfg["dropout"], "input_size": cfg["crop"], "trunk": cfg["trunk"],
            "trunk_input": cfg["trunk_input"]}


def train_fold(cfg: dict, variant: str, faces: np.ndarray, labels: np.ndarray, subjects: np.ndarray,
               n_classes: int, seed: int, desc: str = "train") -> tuple[FERNet, dict]:
    """Train one fold's net on normalised faces (items x S x S), labels (-1 = reference-only), subject ids.

    Each time a face enters a batch it is seen through one random view: with no jitter configured one of
    its ten fixed crops (``five_crops`` + flips, Sec. 5.1), otherwise a random affine crop
    (``jitter_crops``).
    """
    device = resolve_device(cfg["device"])
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    net = FERNet(**net_args(cfg, n_classes)).to(device)
    use_metric = variant != "softmax" and cfg["tuplet_weight"] > 0
    tuplet = TupletClustersLoss(tau_init=cfg["tau_init"], beta=cfg["beta"]).to(device)
    groups = [{"params": list(net.parameters()), "weight_decay": cfg["weight_decay"]}]
    if use_metric:   # the learned threshold is not decayed (decay would pull it towards softplus(0))
        groups.append({"params": list(tuplet.parameters()), "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=cfg["lr"])
    sampler = TupletBatchSampler(labels, subjects, batch_size=cfg["batch_size"], n_queries=cfg["n_queries"],
                                 n_pos=cfg["n_pos"], n_neg=cfg["n_neg"], seed=seed)
    total_steps = cfg["epochs"] * len(sampler)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps)))
    jitter = any(float(cfg[k]) > 0 for k in ("rotate", "scale", "shift"))
    if jitter:
        faces_t = torch.from_numpy(np.ascontiguousarray(faces, dtype=np.float32)).unsqueeze(1).to(device)
    else:
        crops_t = torch.from_numpy(np.stack([five_crops(f, cfg["crop"], flips=True) for f in faces])
                                   .astype(np.float32)).to(device)
    history = []
    bar = tqdm(range(cfg["epochs"]), desc=desc, unit="epoch", leave=False)
    for epoch in bar:
        net.train()
        sums = {"ce": 0.0, "tuplet": 0.0, "n": 0}
        for batch in sampler:
            idx = torch.as_tensor(batch)
            if jitter:
                x = jitter_crops(faces_t[idx], cfg["crop"], float(cfg["rotate"]), float(cfg["scale"]),
                                 float(cfg["shift"]), gen)
            else:
                which = torch.as_tensor(rng.integers(0, crops_t.shape[1], size=len(batch)))
                x = crops_t[idx, which].unsqueeze(1)
            y = torch.as_tensor(labels[batch], device=device)
            logits, emb = net(x)
            has_label = y != REFERENCE_ONLY
            loss = F.cross_entropy(logits[has_label], y[has_label])
            sums["ce"] += float(loss.detach())
            if use_metric:
                tuplets = mine_tuplets(emb, labels[batch], subjects[batch], cfg["n_pos"], cfg["n_neg"],
                                       cfg["positive_mining"])
                lt = tuplet(emb, tuplets)
                loss = loss + cfg["tuplet_weight"] * lt
                sums["tuplet"] += float(lt.detach())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            sums["n"] += 1
        rec = {"epoch": epoch + 1, "ce": sums["ce"] / sums["n"], "tuplet": sums["tuplet"] / sums["n"],
               "tau": float(tuplet.tau.detach())}
        history.append(rec)
        bar.set_postfix(ce=f"{rec['ce']:.3f}", tup=f"{rec['tuplet']:.3f}", tau=f"{rec['tau']:.2f}")
    bar.close()
    net.eval()
    return net, {"history": history, "tau": float(tuplet.tau.detach())}


@torch.no_grad()
@torch.no_grad()
def predict_proba(net: FERNet, faces_norm: np.ndarray, crop: int, batch: int = 256,
                  tta: bool = False, max_crops: int | None = None) -> np.ndarray:
    """Softmax-branch class probabilities (N x classes): of the centre crop (Sec. 5.1) or, with ``tta``, the
    mean softmax over the ten crops (``five_crops`` + flips). ``faces_norm``: N x S x S. At most ``batch`` faces
    and, with ``max_crops``, at most that many crops go through the net at once: memory is bounded by the
    crops per pass, not by the number of faces."""
    net.eval()
    device = next(net.parameters()).device
    if max_crops is not None:
        batch = max(1, min(batch, max_crops // (10 if tta else 1)))
    if not tta:
        x = torch.from_numpy(center_crop(faces_norm, crop)).unsqueeze(1)
        return torch.cat([net(x[i:i + batch].to(device))[0].softmax(1).cpu()
                          for i in range(0, len(x), batch)]).numpy()
    out = []
    for i in range(0, len(faces_norm), batch):
        views = np.stack([five_crops(f, crop, flips=True) for f in faces_norm[i:i + batch]])  # b x 10 x c x c
        x = torch.from_numpy(views.astype(np.float32)).reshape(-1, 1, crop, crop)
        out.append(net(x.to(device))[0].softmax(1).reshape(len(views), views.shape[1], -1).mean(1).cpu())
    return torch.cat(out).numpy()


def predict(net: FERNet, faces_norm: np.ndarray, crop: int, batch: int = 256, tta: bool = False) -> np.ndarray:
    """Predicted class indices (argmax of :func:`predict_proba`)."""
    return predict_proba(net, faces_norm, crop, batch, tta).argmax(1)


def _config_hash(run_cfg: dict) -> str:
    # options added later, at their defaults, leave the hash of earlier run dirs unchanged
    keep = {k: v for k, v in run_cfg.items() if k not in ("threads", "only_fold", "device")
            and not (k in LATER_OPTIONS and v == LATER_OPTIONS[k])}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _write_confusion(path_stem: Path, cm: np.ndarray, classes: list[str], title: str, png: bool) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["true\\pred", *classes])
    for c, row in zip(classes, cm):
        w.writerow([c, *map(int, row)])
    write_text(path_stem.with_suffix(".csv"), buf.getvalue())
    if png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        fig, ax = plt.subplots(figsize=(1 + 0.8 * len(classes), 1 + 0.7 * len(classes)), dpi=100)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, f"{norm[i, j]:.2f}\n({cm[i, j]})", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        buf2 = io.BytesIO()
        fig.savefig(buf2, format="png")
        plt.close(fig)
        write_bytes(path_stem.with_suffix(".png"), buf2.getvalue())


def summarize(out: Path, classes: list[str], n_folds: int, variant: str) -> dict:
    """Rebuild metrics.jsonl, confusion.csv/png and summary.json from the finished folds."""
    results = [json.loads(p.read_text()) for p in sorted((out / "folds").glob("fold_*.json"))]
    write_text(out / "metrics.jsonl", "".join(
        json.dumps({k: r.get(k) for k in ("fold", "accuracy", "per_class_accuracy", "n_test", "n_train",
                                          "n_references", "seconds", "cpu_seconds", "tau")}) + "\n"
        for r in results))
    if not results:
        return {}
    cm = sum(np.asarray(r["confusion"]) for r in results)
    accs = np.asarray([r["accuracy"] for r in results])
    summary = {
        "variant": variant, "split": results[0].get("split", "test"), "classes": classes, "folds_done": len(results), "folds_total": n_folds,
        "complete": len(results) == n_folds,
        "mean_accuracy": float(accs.mean()), "std_accuracy": float(accs.std(ddof=1)) if len(accs) > 1 else 0.0,
        "pooled_accuracy": float(np.trace(cm) / cm.sum()),
        "per_class_accuracy": dict(zip(classes, per_class_accuracy(cm))),
        "fold_accuracy": {str(r["fold"]): r["accuracy"] for r in results},
        "confusion": cm.tolist(), "minutes": sum(r["seconds"] for r in results) / 60.0,
    }
    _write_confusion(out / "confusion", cm, classes,
                     f"{variant}: {len(results)}/{n_folds} folds, mean acc {summary['mean_accuracy']:.3f}", png=True)
    write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary


def load_extra(cfg: dict, dataset: PreparedDataset, classes: list[str], first_subject_id: int):
    """The faces of ``cfg["extra_data"]`` (prepared folders of other datasets) for every training set: FER-
    normalised faces, labels, subject ids from ``first_subject_id`` on (their own identities for the tuplet
    mining; one subject name in two extra folders is one person, e.g. a set's peak and neutral frames), and per
    folder what was kept and left out. Refused, naming the folder: another face size or framing than
    ``dataset`` (the net would learn how each set was cut; ``nfgan fer reframe`` moves faces into another set's
    framing), or any face identical to a face of ``dataset`` (extra data must show other people than the
    cross-validation's, or test faces would be trained on)."""
    from nfgan.fer.precropped import framing

    def digest(face: np.ndarray) -> bytes:
        return hashlib.sha1(face.tobytes()).digest()

    cls_index = {c: i for i, c in enumerate(classes)}
    own_faces = {digest(f) for f in np.asarray(dataset.images, dtype=np.uint8)}
    faces, labels, subjects, report, ids = [], [], [], [], {}
    for path in cfg["extra_data"]:
        extra = PreparedDataset(path)
        if extra.size != dataset.size:
            raise FERConfigError(f"{path}: extra faces are {extra.size} px, {dataset.root} has {dataset.size} px")
        if framing(extra) != framing(dataset):
            raise FERConfigError(f"{path}: faces cut as {framing(extra)!r}, {dataset.root} as "
                                 f"{framing(dataset)!r}; move them into its framing first: nfgan fer reframe "
                                 f"--data {path} --like {dataset.root} --out FOLDER")
        images = np.asarray(extra.images, dtype=np.uint8)
        shared = [r["id"] for r, f in zip(extra.records, images) if digest(f) in own_faces]
        if shared:
            raise FERConfigError(f"{path}: {len(shared)} faces (e.g. id {shared[0]}) are identical to faces of "
                                 f"{dataset.root}; extra training data must come from other people")
        keep = [i for i, r in enumerate(extra.records) if r["expression"] in cls_index]
        names = sorted({extra.records[i]["subject"] for i in keep})
        for name in names:
            ids.setdefault(name, first_subject_id + len(ids))
        faces.append(normalise_all(images[keep]))
        labels.append(np.asarray([cls_index[extra.records[i]["expression"]] for i in keep], dtype=np.int64))
        subjects.append(np.asarray([ids[extra.records[i]["subject"]] for i in keep], dtype=np.int64))
        left_out = sorted({r["expression"] for r in extra.records} - set(cls_index))
        report.append({"path": path, "faces": len(keep), "subjects": len(names), "left_out_classes": left_out,
                       "left_out_faces": len(extra.records) - len(keep)})
    if not faces:
        return None, report
    return (np.concatenate(faces), np.concatenate(labels), np.concatenate(subjects)), report


def add_extra(items: tuple[np.ndarray, np.ndarray, np.ndarray], extra) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training ``items`` (faces, labels, subject ids) followed by the ``extra`` ones (``load_extra``)."""
    if extra is None:
        return items
    return tuple(np.concatenate([a, b]) for a, b in zip(items, extra))


def check_variant(variant: str, augment) -> None:
    """Refuse a variant / ``--augment`` combination that cannot run (before any data is read)."""
    if variant not in VARIANTS:
        raise FERConfigError(f"--variant must be one of {VARIANTS}, got {variant!r}")
    if variant == "2b_aug" and not augment:
        raise FERConfigError("--variant 2b_aug needs --augment NFGAN_CHECKPOINT_OR_FOLDER")
    if augment and variant != "2b_aug":
        raise FERConfigError(f"--augment is only used by --variant 2b_aug (got --variant {variant})")


def load_references(aug: AugmentSource, dataset: PreparedDataset, cache_dir: str | Path | None) -> np.ndarray:
    """Read or make the NFGAN references of every face of ``dataset`` (``AugmentSource.load``) and return them
    FER-normalised; references of another size than the dataset's faces are refused."""
    aug.load(dataset, cache_dir=cache_dir)
    if aug.faces.shape[1:] != (dataset.size, dataset.size):
        raise FERConfigError(f"{aug.source}: normalised faces are {aug.faces.shape[1:]}, the FER data "
                             f"{dataset.root} has {(dataset.size, dataset.size)}; they must match")
    return normalise_all(aug.faces)


def with_references(items: tuple[np.ndarray, np.ndarray, np.ndarray], aug: AugmentSource, aug_faces: np.ndarray,
                    subject_names: list[str], per_subject: int, label: int, subj_ids: dict[str, int]):
    """Training ``items`` (faces, labels, subject ids) plus the references of ``subject_names`` (``per_subject``
    each, 0 = all) with ``label``; returns the three arrays and the number of references added (Sec. 5.4)."""
    idx = aug.indices_for(subject_names, per_subject=per_subject or None)
    faces, labels, subjects = items
    if len(idx):
        faces = np.concatenate([faces, aug_faces[idx]])
        labels = np.concatenate([labels, np.full(len(idx), label)])
        subjects = np.concatenate([subjects, [subj_ids[aug.subjects[i]] for i in idx]])
    return faces, labels, subjects, len(idx)


def run_cv(data: str | Path, folds_file: str | Path, out: str | Path, variant: str = "2b",
           config: str | Path | None = None, overrides: dict | None = None, augment: str | Path | None = None,
           augment_subjects: str | Path | None = None, only_fold: int | list[int] | None = None,
           progress: bool = True, validate: bool = False, sets=None) -> dict:
    """Run (or resume) the cross-validation; returns the summary dict (see module doc).

    ``validate``: model-selection mode. In every fold a subject-disjoint validation split
    (``val_fraction`` of the fold's training subjects, seeded) is held out of training and the net is scored
    on it; the fold's test subjects are not touched at all. Compare configurations on these numbers, then
    run the chosen one without ``validate`` for the test figures.
    """
    cfg = load_config(config, overrides, sets)
    check_variant(variant, augment)
    device = resolve_device(cfg["device"])
    torch.set_num_threads(int(cfg["threads"]))
    dataset = PreparedDataset(data)
    folds = load_folds(folds_file, dataset.subjects())
    classes = class_list(dataset, cfg["classes"])
    todo = list(range(len(folds))) if only_fold is None else (
        [only_fold] if isinstance(only_fold, int) else list(only_fold))
    bad = [k for k in todo if not 0 <= k < len(folds)]
    if bad:
        raise FERConfigError(f"--only-fold {bad}: {folds_file} has folds 0..{len(folds) - 1}")
    if validate and not 0 < float(cfg["val_fraction"]) < 1:
        raise FERConfigError(f"val_fraction must be in (0, 1) for --validate, got {cfg['val_fraction']}")
    out = Path(out)
    from nfgan.weights import protocol_file

    run_cfg = {**cfg, "data": str(Path(data).resolve()), "folds_file": str(protocol_file(folds_file, "folds").resolve()),
               "variant": variant, "augment": str(Path(augment).resolve()) if augment else None,
               "classes": classes, "split": "val" if validate else "test"}
    run_cfg["config_hash"] = _config_hash(run_cfg)
    cfg_path = out / "config.yaml"
    if cfg_path.is_file():
        old = yaml.safe_load(cfg_path.read_text()) or {}
        if old.get("config_hash") != run_cfg["config_hash"]:
            raise FERConfigError(f"{out}: holds a run with a different configuration (config_hash "
                                 f"{old.get('config_hash')} != {run_cfg['config_hash']}); use another --out")

    # keep only images whose expression is in the label set
    cls_index = {c: i for i, c in enumerate(classes)}
    rows = [i for i, r in enumerate(dataset.records) if r["expression"] in cls_index]
    images = np.asarray(dataset.images, dtype=np.uint8)
    subj_all = dataset.column("subject")
    subj_ids = {s: i for i, s in enumerate(sorted(set(subj_all)))}
    faces = normalise_all(images)
    labels_all = np.asarray([cls_index.get(r["expression"], REFERENCE_ONLY) for r in dataset.records])
    subjects_all = np.asarray([subj_ids[s] for s in subj_all])
    extra, extra_report = load_extra(cfg, dataset, classes, first_subject_id=len(subj_ids))
    aug = None
    if augment:
        aug = AugmentSource(augment, subjects_file=augment_subjects)
        for k, test_subjects in enumerate(folds):   # refuse before running the NFGAN or training anything
            check_no_leak(aug.train_subjects, test_subjects, str(augment), fold=k)
        aug_faces = load_references(aug, dataset, cache_dir=out)
        ref_label = cls_index.get("neutral", REFERENCE_ONLY)
    if not cfg_path.is_file():   # only once the inputs (and the leak guard) have been accepted
        write_text(cfg_path, yaml.safe_dump(run_cfg, sort_keys=False))

    fold_bar = tqdm(todo, desc=f"CV {variant}", unit="fold", disable=not progress)
    for k in fold_bar:
        res_path = out / "folds" / f"fold_{k:02d}.json"
        if res_path.is_file():
            continue
        t0, c0 = time.time(), time.process_time()
        test_set = set(folds[k])
        if validate:   # hold out part of the training subjects; the test fold stays unseen
            train_subjects = sorted({subj_all[i] for i in rows} - test_set)
            vrng = np.random.default_rng(int(cfg["seed"]) * 1000 + k + 7919)
            n_val = max(1, int(round(float(cfg["val_fraction"]) * len(train_subjects))))
            eval_set = set(vrng.choice(train_subjects, size=n_val, replace=False).tolist())
            excluded = test_set | eval_set
        else:
            eval_set, excluded = test_set, test_set
        train_idx = np.asarray([i for i in rows if subj_all[i] not in excluded])
        test_idx = np.asarray([i for i in rows if subj_all[i] in eval_set])
        train_faces, train_labels, train_subj = faces[train_idx], labels_all[train_idx], subjects_all[train_idx]
        n_refs = 0
        if aug is not None:
            check_no_leak(aug.train_subjects, folds[k], str(augment), fold=k)
            train_faces, train_labels, train_subj, n_refs = with_references(
                (train_faces, train_labels, train_subj), aug, aug_faces, sorted({subj_all[i] for i in train_idx}),
                int(cfg["references_per_subject"]), ref_label, subj_ids)
        train_faces, train_labels, train_subj = add_extra((train_faces, train_labels, train_subj), extra)
        true = labels_all[test_idx]
        net, info = train_fold(cfg, variant, train_faces, train_labels, train_subj, len(classes),
                               seed=int(cfg["seed"]) * 1000 + k, desc=f"fold {k}")
        probs = predict_proba(net, faces[test_idx], cfg["crop"], tta=bool(cfg["tta"]))
        pred = probs.argmax(1)
        cm = confusion_matrix(true, pred, len(classes))
        result = {"fold": k, "accuracy": float((pred == true).mean()),
                  "per_class_accuracy": dict(zip(classes, per_class_accuracy(cm))), "confusion": cm.tolist(),
                  "n_train": int(len(train_idx)), "n_references": int(n_refs), "n_test": int(len(test_idx)),
                  **({"extra_data": extra_report} if extra_report else {}),
                  "split": "val" if validate else "test", "test_subjects": sorted(eval_set),
                  "seconds": time.time() - t0, "device": str(device),
                  "cpu_seconds": time.process_time() - c0, "tau": info["tau"],
                  "history": info["history"],
                  "predictions": [{"id": dataset.records[i]["id"], "true": classes[t], "pred": classes[p],
                                   "probs": [round(float(v), 6) for v in row]}
                                  for i, t, p, row in zip(test_idx, true, pred, probs)]}
        _write_confusion(out / f"confusion_fold_{k:02d}", cm, classes, "", png=False)
        write_text(res_path, json.dumps(result, indent=1) + "\n")
        summary = summarize(out, classes, len(folds), variant)
        fold_bar.set_postfix(acc=f"{result['accuracy']:.3f}", mean=f"{summary['mean_accuracy']:.3f}")
    fold_bar.close()
    return summarize(out, classes, len(folds), variant)
