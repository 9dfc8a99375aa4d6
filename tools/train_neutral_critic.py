"""Train the expression critic of the lever (``nfgan.models.auxiliary.neutral_critic``) and write it where nfgan
ships it.

    python tools/train_neutral_critic.py [--out src/nfgan/assets/neutral_critic.safetensors] \
        [--report docs/results/neutral_critic] [--epochs 60] [SOURCE=FOLDER:SPLITS ...]

Default sources: the real prepared folders of ``configs/all_data.yaml`` (out/london64, out/canada64,
out/ckplus_wn64, out/jaffe64, out/yale64) with their shipped splits. Frontal faces of the training people teach
the critic; the validation people's choose its epoch (lowest class-balanced loss); the test people are not read.
Labels outside nfgan's vocabulary (Yale's sleepy, wink) are left out; Yale's neutral lighting and glasses
variants count as neutral. The report folder gets ``report.md`` (validation people: per set and expression, the
share the critic calls neutral and its mean p_neutral) and ``report.json`` (every epoch).

``--transfer FOLDER`` adds a table for every face of a prepared folder the critic did not learn (e.g. out/ckplus_wn64
for a critic trained without CK+): per expression, the share the new critic and human-models' mini-Xception (the
lever's first critic) call neutral, and each one's neutral-against-expressive accuracy.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

DEFAULT_SOURCES = ("london=out/london64:london", "canada=out/canada64:canada",
                   "ckplus=out/ckplus_wn64:ckplus_with_neutral", "jaffe=out/jaffe64:jaffe", "yale=out/yale64:yale")


def faces_of(folder: str, people: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Frontal faces of ``people`` with a critic class: uint8 faces, class indices, expression labels."""
    from nfgan.data.dataset import PreparedDataset
    from nfgan.models.auxiliary.neutral_critic import class_of

    ds = PreparedDataset(folder)
    rows = ds.indices(people, pose="frontal")
    labels = np.asarray(ds.column("expression"), dtype=object)[rows]
    cls = [class_of(e) for e in labels]
    keep = np.array([c is not None for c in cls], dtype=bool)
    rows, labels = rows[keep], labels[keep]
    return (np.asarray(ds.images[rows]), np.array([c for c in cls if c is not None], dtype=np.int64),
            [str(e) for e in labels])


def transfer_table(critic, folder: Path) -> list[str]:
    """Markdown lines: how the critic and the mini-Xception call every face of ``folder``."""
    import torch

    from nfgan.data.dataset import PreparedDataset
    from nfgan.models.auxiliary.expression_faceapi import ExpressionClassifier

    ds = PreparedDataset(folder)
    expr = np.array([("neutral" if str(e).startswith("neutral") else str(e)) for e in ds.column("expression")])
    x = ds.tensor(np.arange(len(ds)))
    calls = {}
    for name, clf in (("this critic", critic), ("mini-Xception", ExpressionClassifier("minixception"))):
        with torch.no_grad():
            p = torch.cat([clf(x[s:s + 256]) for s in range(0, len(x), 256)]).numpy()
        calls[name] = p.argmax(1) == clf.labels.index("neutral")
    names = list(calls)
    out = [f"Every face of `{folder}` ({len(ds)}), a set this critic did not learn: share called neutral, %.", "",
           "| expression | faces | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for e in sorted(set(expr)):
        m = expr == e
        out.append(f"| {e} | {int(m.sum())} | " + " | ".join(f"{100 * calls[n][m].mean():.1f}" for n in names) + " |")
    out.append("| neutral against expressive, accuracy | | " + " | ".join(
        f"{100 * np.mean(calls[n] == (expr == 'neutral')):.1f}" for n in names) + " |")
    return out


def main(argv=None) -> int:
    import torch

    from nfgan.atomic import write_text
    from nfgan.data.pairs import SplitError, source_spec
    from nfgan.models.auxiliary.neutral_critic import CLASSES, fit, shipped_critic_path
    from nfgan.pixels import to_unit_batch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sources", nargs="*", default=list(DEFAULT_SOURCES), help="NAME=FOLDER:SPLITS (split file or "
                    "shipped split name)")
    ap.add_argument("--out", type=Path, default=shipped_critic_path())
    ap.add_argument("--report", type=Path, default=Path("docs/results/neutral_critic"))
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--transfer", type=Path, help="a prepared folder of a face set the critic did not learn")
    args = ap.parse_args(argv)
    given = list(argv if argv is not None else sys.argv[1:])
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))

    parts = {"train": ([], [], []), "val": ([], [], [])}
    used = []
    for spec in args.sources:
        try:
            name, folder, split = source_spec(spec)
        except SplitError as e:
            ap.error(str(e))
        counts = {}
        for part in ("train", "val"):
            f, y, e = faces_of(folder, split[part])
            parts[part][0].append(f)
            parts[part][1].append(y)
            parts[part][2].extend((name, x) for x in e)
            counts[part] = len(y)
        used.append({"name": name, "folder": folder, "splits": spec.rpartition(":")[2], "faces": counts})
        print(f"{name}: {counts['train']} training faces, {counts['val']} validation faces", file=sys.stderr)
    x, y = np.concatenate(parts["train"][0]), np.concatenate(parts["train"][1])
    vx, vy = np.concatenate(parts["val"][0]), np.concatenate(parts["val"][1])
    critic, history = fit(x, y, vx, vy, epochs=args.epochs, seed=args.seed, progress=True)
    critic.save(args.out, sources=used, seed=args.seed, epochs=args.epochs,
                class_counts={c: int((y == k).sum()) for k, c in enumerate(CLASSES)},
                licence="non-commercial research use only (learned CK+, JAFFE and Yale faces)")
    print(f"wrote {args.out} (epoch {critic.info['epoch']}, validation accuracy "
          f"{critic.info['val_accuracy']:.3f}, neutral-vs-expressive {critic.info['val_neutral_accuracy']:.3f})",
          file=sys.stderr)

    with torch.no_grad():
        p = critic(to_unit_batch(vx)).numpy()
    groups: dict[tuple[str, str], list[int]] = {}
    for k, key in enumerate(parts["val"][2]):
        groups.setdefault(key, []).append(k)
    lines = ["# Expression critic: validation people", "",
             f"Command: `{' '.join(['python tools/train_neutral_critic.py'] + given)}`"
             + ("" if given else " (default sources)"), "",
             f"Faces: {len(y)} training, {len(vy)} validation (frontal, training / validation people). Epoch chosen "
             f"on validation loss: {critic.info['epoch']} of {args.epochs}. Validation accuracy "
             f"{100 * critic.info['val_accuracy']:.1f} % over {len(CLASSES)} classes, neutral against expressive "
             f"{100 * critic.info['val_neutral_accuracy']:.1f} %.", "",
             "| set | expression | faces | called neutral % | mean p_neutral |", "|---|---|---|---|---|"]
    for (s, e), ks in sorted(groups.items()):
        lines.append(f"| {s} | {e} | {len(ks)} | {100 * np.mean(p[ks].argmax(1) == 0):.1f} | "
                     f"{p[ks, 0].mean():.2f} |")
    if args.transfer is not None:
        lines += ["", *transfer_table(critic, args.transfer)]
    args.report.mkdir(parents=True, exist_ok=True)
    write_text(args.report / "report.md", "\n".join(lines) + "\n")
    write_text(args.report / "report.json", json.dumps({"sources": used, "history": history,
                                                        "chosen": critic.info}, indent=1) + "\n")
    print(f"report: {args.report / 'report.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
