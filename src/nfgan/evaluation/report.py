"""Figures and the self-contained HTML report of ``nfgan evaluate`` (paper Figs. 1, 3, 4, 5 and 7).

* Fig. 1 (``fig1_grid.png``): for a few evaluation subjects, their inputs ordered by expression and view
  (top row) and the first model's normalised faces (row below).
* Fig. 3 (``fig3_ablation.png``): input | target | one column per model, for inputs spread over views and
  expressions (the paper: input, target, NFGAN, NFGAN without L_id, auto-encoder).
* Fig. 4 (``fig4_identity_<evaluator>.png``): histogram of the input-output embedding distances of each model
  with the calibrated threshold (1 % false accepts on real pairs) as a vertical line.
* Fig. 5 (``fig5_filters.png``): the first convolution's kernels of each model's encoder (paper: 32 Enc
  filters with and without L_feat), each kernel scaled to its own min-max.
* Fig. 7 (``fig7_traversal.png``): decoding ``(1 - t) z + t z~`` for t in [0, 1], where ``z = Enc(x)`` and
  ``z~ = Enc(x~)`` is the code of the normalised face (first NFGAN model).

Image grids are composed as uint8 arrays (PIL for the labels); histograms use matplotlib (Agg). Every file is
written atomically; the HTML inlines the PNGs as base64 so it can be mailed or archived alone.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from nfgan.atomic import atomic_open, save_image, write_text
from nfgan.pixels import to_uint8, to_unit_batch

POSE_ORDER = ("left_profile", "left_3quarter", "frontal", "right_3quarter", "right_profile")
LABEL_H = 14
PAD = 2


# ----------------------------------------------------------------------------------------------- helpers
def _label(width: int, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    img = Image.new("L", (width, LABEL_H), 255)
    ImageDraw.Draw(img).text((2, 1), text[: max(1, width // 6)], fill=0)
    return np.asarray(img)


def tile(rows: list[list[np.ndarray | None]], col_labels: Sequence[str] | None = None,
         row_labels: Sequence[str] | None = None, size: int | None = None, label_w: int = 0) -> np.ndarray:
    """A white-padded mosaic of equally sized uint8 tiles (``None`` = blank), with optional labels."""
    size = size or next(t.shape[0] for r in rows for t in r if t is not None)
    ncol = max(len(r) for r in rows)
    top = LABEL_H if col_labels else 0
    left = label_w if row_labels else 0
    h = top + len(rows) * (size + PAD) + PAD
    w = left + ncol * (size + PAD) + PAD
    out = np.full((h, w), 255, np.uint8)
    if col_labels:
        for c, text in enumerate(col_labels):
            x0 = left + PAD + c * (size + PAD)
            out[:LABEL_H, x0:x0 + size] = _label(size, text)
    for r, row in enumerate(rows):
        y0 = top + PAD + r * (size + PAD)
        if row_labels:
            lab = _label(label_w, row_labels[r])
            y = y0 + (size - LABEL_H) // 2
            out[y:y + LABEL_H, :label_w] = lab
        for c, t in enumerate(row):
            if t is not None:
                x0 = left + PAD + c * (size + PAD)
                out[y0:y0 + size, x0:x0 + size] = t
    return out


def _spread(mask_lists: list[np.ndarray], k: int) -> list[int]:
    """Up to ``k`` indices taken round-robin from several index lists (variety over groups)."""
    picks, i = [], 0
    while len(picks) < k and any(i < len(m) for m in mask_lists):
        for m in mask_lists:
            if i < len(m) and len(picks) < k:
                picks.append(int(m[i]))
        i += 1
    return picks


# ----------------------------------------------------------------------------------------------- figures
def fig1_grid(es, outputs: np.ndarray, model_name: str, n_subjects: int = 3) -> np.ndarray:
    """Fig. 1: per subject, inputs by expression and view (top), ``model_name``'s outputs (below)."""
    exprs = sorted(set(es.expressions), key=lambda e: (e != "neutral", e))
    poses = [p for p in POSE_ORDER if p in set(es.poses)] + sorted(set(es.poses) - set(POSE_ORDER))
    cols = [(e, p) for e in exprs for p in poses]
    subj_of = [es.dataset.records[int(i)]["subject"] for i in es.inputs]
    counts = {s: subj_of.count(s) for s in dict.fromkeys(subj_of)}
    chosen = sorted(counts, key=lambda s: -counts[s])[:n_subjects]
    rows, labels = [], []
    for s in chosen:
        where = {(es.expressions[j], es.poses[j]): j for j in range(len(es)) if subj_of[j] == s}
        rows.append([es.input_images[where[c]] if c in where else None for c in cols])
        rows.append([outputs[where[c]] if c in where else None for c in cols])
        labels += [f"{s} input", model_name[:12]]
    short = {"left_profile": "L-prof", "left_3quarter": "L-3/4", "frontal": "front", "right_3quarter": "R-3/4",
             "right_profile": "R-prof"}
    names = [f"{e[:3]} {short.get(p, p[:6])}" for e, p in cols]
    return tile(rows, names, labels, label_w=84)


def fig3_ablation(es, outputs: dict[str, np.ndarray], models: Sequence[str], k: int = 8) -> np.ndarray:
    """Fig. 3: input | target | each model, for ``k`` inputs spread over views and expressions."""
    groups = [np.nonzero((np.asarray(es.views) == v) & (np.asarray(es.expressions) == e))[0]
              for v in ("frontal", "3/4", "profile") for e in sorted(set(es.expressions))]
    picks = _spread([g for g in groups if len(g)], k)
    rows = [[es.input_images[j], es.target_images[j], *[outputs[m][j] for m in models]] for j in picks]
    return tile(rows, ["input", "target", *models])


def fig4_identity(per_face: dict, evaluator: str, threshold: float, models: Sequence[str], path: Path,
                  training_aligned: bool) -> Path:
    """Fig. 4: histogram of input-output embedding distances per model, threshold line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    all_d = np.concatenate([per_face[m][f"id_dist_{evaluator}"] for m in models])
    bins = np.linspace(0, max(float(all_d.max()), threshold) * 1.05, 40)
    for m in models:
        d = per_face[m][f"id_dist_{evaluator}"]
        rate = float((d <= threshold).mean())
        ax.hist(d, bins=bins, histtype="step", linewidth=1.6, label=f"{m} ({100 * rate:.1f}% pass)")
    ax.axvline(threshold, color="k", linestyle="--", linewidth=1.2, label=f"threshold {threshold:.3f} (FAR 1%)")
    note = " - training-aligned" if training_aligned else " - independent"
    ax.set_xlabel(f"L2 distance input vs output ({evaluator}{note})")
    ax.set_ylabel("inputs")
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    with atomic_open(path, "wb") as f:
        f.write(buf.getvalue())
    return path


def fig5_filters(models: dict, zoom: int = 8) -> np.ndarray:
    """Fig. 5: each model's first-layer kernels, one row per model, each kernel min-max scaled."""
    rows, labels = [], []
    size = None
    for name, g in models.items():
        w = g.first_layer_filters()
        if w is None:        # a network-free baseline
            continue
        lo, hi = w.min(axis=(1, 2), keepdims=True), w.max(axis=(1, 2), keepdims=True)
        u8 = ((w - lo) / np.maximum(hi - lo, 1e-12) * 255).round().astype(np.uint8)
        ks = [np.kron(k, np.ones((zoom, zoom), np.uint8)) for k in u8]
        size = max(size or 0, ks[0].shape[0])
        rows.append(ks)
        labels.append(name[:14])
    rows = [[np.pad(k, ((0, size - k.shape[0]), (0, size - k.shape[1])), constant_values=255) for k in r] for r in rows]
    return tile(rows, None, labels, size=size, label_w=90)


@torch.no_grad()
def fig7_traversal(es, g, steps: int = 8, k: int = 4) -> np.ndarray:
    """Fig. 7: decode ``(1 - t) Enc(x) + t Enc(x~)`` for ``steps`` values of t, for ``k`` inputs."""
    want = [j for j in range(len(es)) if es.expressions[j] != "neutral" or es.views[j] != "frontal"]
    picks = want[:: max(1, len(want) // k)][:k] or list(range(min(k, len(es))))
    x = to_unit_batch(es.input_images[picks])
    z = g.encode(x)
    z_t = g.encode(g.decode(z))
    t = torch.linspace(0, 1, steps)
    zs = (1 - t)[None, :, None] * z[:, None] + t[None, :, None] * z_t[:, None]
    imgs = g.decode(zs.reshape(-1, z.shape[1]))
    u8 = to_uint8(imgs).reshape(len(picks), steps, *imgs.shape[-2:])
    rows = [[es.input_images[p], *u8[i]] for i, p in enumerate(picks)]
    return tile(rows, ["input", *[f"t={v:.2f}" for v in t.tolist()]])


def make_figures(folder: Path, models: dict, es, outputs: dict[str, np.ndarray], per_face: dict,
                 metrics: dict) -> dict[str, Path]:
    """Write every figure into ``folder``; returns ``{figure key: path}``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figs: dict[str, Path] = {}
    names = list(models)
    first = names[0] if names else "ground_truth"
    figs["fig1"] = folder / "fig1_grid.png"
    save_image(figs["fig1"], fig1_grid(es, outputs[first], first))
    figs["fig3"] = folder / "fig3_ablation.png"
    save_image(figs["fig3"], fig3_ablation(es, outputs, names))
    for ev, cal in metrics["identity_calibration"].items():
        key = f"fig4_{ev}"
        figs[key] = fig4_identity(per_face, ev, cal["far_threshold"], names or ["input"],
                                  folder / f"fig4_identity_{ev}.png", cal.get("training_aligned", False))
    if any(g.first_layer_filters() is not None for g in models.values()):
        figs["fig5"] = folder / "fig5_filters.png"
        save_image(figs["fig5"], fig5_filters(models))
    nf = next((n for n, g in models.items() if g.kind == "nfgan"), None)
    if nf is not None:
        figs["fig7"] = folder / "fig7_traversal.png"
        save_image(figs["fig7"], fig7_traversal(es, models[nf]))
    return figs


# ----------------------------------------------------------------------------------------------- tables
def _fmt(v, pct: bool = False, digits: int = 3) -> str:
    if v is None:
        return "-"
    if pct:
        return f"{100 * v:.1f}"
    return f"{v:.{digits}f}"


def table_rows(metrics: dict, groups: Sequence[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per (model, group) with identity pass rates against the input and against the
    person's real frontal neutral face (``gt``), rank-1 identification among the evaluated people's real
    frontal neutral faces, neutral rates, SSIM, PSNR, L1 and KID x 1000."""
    ids = list(metrics.get("identity_calibration", {}))
    exprs = list(metrics.get("expression_evaluators", {}))
    header = (["model", "group", "n"]
              + [f"id pass {e}{'*' if metrics['identity_calibration'][e].get('training_aligned') else ''} %" for e in ids]
              + [f"gt pass {e} %" for e in ids] + [f"rank-1 {e} %" for e in ids]
              + [f"neutral {e} %" for e in exprs] + ["SSIM", "PSNR dB", "L1", "KID x1000"])
    rows = []
    for name, res in metrics["models"].items():
        for gname, st in res["groups"].items():
            if groups is not None and gname not in groups:
                continue
            kid_v = st.get("kid")
            rows.append([name, gname, str(st["n"])]
                        + [_fmt(st.get(f"id_pass_{e}"), pct=True) for e in ids]
                        + [_fmt(st.get(f"id_gt_pass_{e}"), pct=True) for e in ids]
                        + [_fmt(st.get(f"rank1_{e}"), pct=True) for e in ids]
                        + [_fmt(st.get(f"neutral_{e}"), pct=True) for e in exprs]
                        + [_fmt(st.get("ssim")), _fmt(st.get("psnr"), digits=2), _fmt(st.get("l1")),
                           "-" if kid_v is None else f"{1000 * kid_v:.1f}"])
    return header, rows


def summary_table(metrics: dict, groups: Sequence[str] | None = None) -> str:
    """A Markdown table (also readable in a terminal). ``*`` marks training-aligned identity evaluators."""
    return _markdown_table(*table_rows(metrics, groups))


def _markdown_table(header: Sequence[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _html_table(header: Sequence[str], rows: list[list[str]]) -> str:
    return "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows) + "</table>"


def goal_rows(metrics: dict) -> list[list[str]]:
    """The goal checks (``metrics["goals"]``, :func:`nfgan.evaluation.evaluate.goal_checks`) as table cells: model,
    goal, evaluator, value %, target %, verdict."""
    def verdict(r: dict) -> str:
        if r["met"] is None:
            return "-"
        if r["met"]:
            return "met"
        return r.get("note") or f"missed by {-r['margin_points']:.1f} points"

    return [[name, r["goal"], r["evaluator"], _fmt(r["value"], pct=True), f"{100 * r['target']:.0f}", verdict(r)]
            for name, rows in metrics.get("goals", {}).items() for r in rows]


GOAL_HEADER = ("model", "goal", "evaluator", "value %", "target %", "verdict")


def goals_table(metrics: dict) -> str:
    """:func:`goal_rows` as a Markdown table."""
    return _markdown_table(GOAL_HEADER, goal_rows(metrics))


def _img_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}" style="image-rendering:pixelated;max-width:100%">'


def write_html(path: Path, metrics: dict, figs: dict[str, Path]) -> Path:
    """The self-contained report: calibration, the results table, every figure inlined."""
    header, rows = table_rows(metrics)
    cal_rows = "".join(
        f"<tr><td>{html.escape(e)}{' (training-aligned)' if c.get('training_aligned') else ''}</td>"
        f"<td>{c['eer'] * 100:.2f}%</td><td>{c['eer_threshold']:.4f}</td><td>{c['far_threshold']:.4f}</td>"
        f"<td>{c['tar_at_far'] * 100:.1f}%</td><td>{c['n_genuine']}</td><td>{c['n_impostor']}</td></tr>"
        for e, c in metrics.get("identity_calibration", {}).items())
    table = _html_table(header, rows)
    captions = {"fig1": "Fig. 1-style grid: inputs by expression and view, and the first model's outputs",
                "fig3": "Fig. 3-style comparison: input | target | each model",
                "fig5": "Fig. 5: first-layer filters of each model's encoder",
                "fig7": "Fig. 7: latent traversal from z = Enc(x) to z~ = Enc(x~)"}
    fig_html = ""
    for key, p in figs.items():
        cap = captions.get(key, f"Fig. 4: identity distances input vs output ({key[5:]}), threshold at 1% FAR"
                           if key.startswith("fig4") else key)
        fig_html += f"<figure>{_img_tag(p, cap)}<figcaption>{html.escape(cap)}</figcaption></figure>\n"
    goals = _html_table(GOAL_HEADER, goal_rows(metrics))
    kid = metrics.get("kid", {})
    steps = metrics.get("input_degradation")
    degraded = ("" if not steps else "\n<p><b>Inputs changed before normalisation</b> (targets clean): "
                + html.escape(", ".join(f"{k}={v:g}" for k, v in steps.items())) + "</p>")
    doc = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>nfgan evaluation</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #bbb;padding:2px 6px;text-align:right}}figure{{margin:1.5em 0}}
figcaption{{font-size:13px;color:#333}}</style></head><body>
<h1>nfgan evaluation</h1>
<p>Data <code>{html.escape(str(metrics['data']))}</code>, split <b>{html.escape(metrics['split'])}</b>:
{metrics['n_inputs']} inputs of {len(metrics['subjects'])} subjects. Command:
<code>{html.escape(str(metrics.get('command') or ''))}</code></p>{degraded}
<h2>Identity thresholds (real faces of split '{html.escape(str(metrics.get('calibration_split', metrics['split'])))}')</h2>
<table><tr><th>evaluator</th><th>EER</th><th>EER threshold</th><th>threshold at FAR 1%</th><th>TAR there</th>
<th>genuine pairs</th><th>impostor pairs</th></tr>{cal_rows}</table>
<h2>Results</h2>
<p>id pass: share of inputs whose output is within the threshold of the input (* = training-aligned evaluator);
neutral: share classified neutral; SSIM/PSNR/L1 against the subject's frontal neutral face; KID between outputs
and {kid.get('real_faces', '?')} real frontal neutral faces on {html.escape(str(kid.get('embedder')))} features.
Rows <i>input</i> and <i>ground_truth</i> are references (no normalisation; the target itself).</p>
{table}
<h2>Goals</h2>
<p>Each normaliser against the quality goals (identity with the independent embedder(s), neutrality with
every classifier); a missed goal says by how many percentage points.</p>
{goals}
<h2>Figures</h2>
{fig_html}
</body></html>
"""
    write_text(path, doc)
    return Path(path)
