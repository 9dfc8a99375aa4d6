"""Train nfgan's own identity network (``nfgan.models.auxiliary.identity_net``), the second L_id network.

    python tools/train_identity_net.py --out runs/identity/no_jaffe_yale.safetensors \
        --report docs/results/identity_net/no_jaffe_yale [--epochs 60] [SOURCE=FOLDER:SPLITS ...]

Default sources: the prepared folders of the default recipe's last stage (``configs/all_data_sfm.yaml``: out/london64,
out/canada64, out/ckplus_wn64, out/jaffe64, out/yale64, and the SFM synthetic expressions out/london64_sfm,
out/canada64_sfm) with their shipped splits; pass the sources to leave sets out. A person is named by the split
file and the subject (``london/001``), so a folder's synthetic faces join the same person's real ones. The
training people's faces (every view but profiles; a turned face also as the generator reads it: mirrored to face
right, frontalised with the mirror fill) teach the net; the validation people's choose its epoch (lowest equal
error rate over all their pairs); the test people are not read.

The report folder gets ``report.md`` (validation people, per set: equal error rate and true-accept rate at 1 %
false accepts for this net and for dlib's ResNet on the same faces, and for London the frontal-neutral against
3/4 pairs) and ``report.json`` (every epoch). ``--transfer NAME=FOLDER`` adds the same rows for every person of a
prepared folder the net did not learn (e.g. ``jaffe=out/jaffe64`` for a net trained without JAFFE); ``--net FILE``
skips training and writes the report of a net already trained (``--out`` is then not written).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

DEFAULT_SOURCES = ("london=out/london64:london", "canada=out/canada64:canada",
                   "ckplus=out/ckplus_wn64:ckplus_with_neutral", "jaffe=out/jaffe64:jaffe", "yale=out/yale64:yale",
                   "london_sfm=out/london64_sfm:london", "canada_sfm=out/canada64_sfm:canada")


def faces_of(folder: str, people: list[str], namespace: str) -> tuple[np.ndarray, list[str], list[str], list[str]]:
    """The faces of ``people`` in ``folder`` (no profiles), turned ones twice (as photographed and as the generator
    reads them): uint8 faces, person names ``namespace/subject``, poses, expressions."""
    from nfgan.data.dataset import PreparedDataset
    from nfgan.data.frontalize import is_turned
    from nfgan.data.generator_input import InputRule

    ds = PreparedDataset(folder)
    rows = ds.indices(people)
    poses = np.asarray(ds.column("pose"), dtype=object)[rows]
    rows = rows[np.array(["profile" not in str(p) for p in poses], dtype=bool)]
    faces = np.asarray(ds.images[rows])
    poses = [str(p) for p in np.asarray(ds.column("pose"), dtype=object)[rows]]
    expr = [str(e) for e in np.asarray(ds.column("expression"), dtype=object)[rows]]
    subj = [f"{namespace}/{s}" for s in np.asarray(ds.column("subject"), dtype=object)[rows]]
    turned = np.array([is_turned(p) for p in poses], dtype=bool)
    if turned.any() and ds.landmarks is not None:
        flipped = list(np.asarray(ds.column("flipped"), dtype=object)[rows][turned])
        fr = InputRule(flip_left_poses=True, frontalize=True, fill="mirror").apply(
            faces[turned], [p for p, t in zip(poses, turned) if t], flipped, np.asarray(ds.landmarks[rows[turned]]))
        faces = np.concatenate([faces, fr])
        subj += [s for s, t in zip(subj, turned) if t]
        poses += [f"{p} (frontalised)" for p, t in zip(poses, turned) if t]
        expr += [e for e, t in zip(expr, turned) if t]
    return faces, subj, poses, expr


def table_rows(name: str, faces: np.ndarray, people: list[str], poses: list[str], expr: list[str], nets: dict) -> list[str]:
    from nfgan.models.auxiliary.identity_net import verification

    out = []
    embs = {k: f(faces) for k, f in nets.items()}
    groups = {"all pairs": np.ones(len(faces), bool)}
    front_neutral = np.array([p == "frontal" and e == "neutral" for p, e in zip(poses, expr)])
    photo_3q = np.array(["3quarter" in p and "frontalised" not in p for p in poses])
    if photo_3q.any():
        groups["frontal neutral + 3/4 photos"] = front_neutral | photo_3q
    for g, m in groups.items():
        cells = []
        for k in nets:
            try:
                v = verification(embs[k][m], list(np.asarray(people)[m]))
                cells.append(f"{100 * v['eer']:.1f} / {100 * v['tar_at_far1']:.1f}")
            except ValueError:
                cells.append("-")
        out.append(f"| {name} | {g} | {int(m.sum())} | {len(set(np.asarray(people)[m]))} | " + " | ".join(cells) + " |")
    return out


def main(argv=None) -> int:
    import torch

    from nfgan.atomic import write_text
    from nfgan.data.pairs import SplitError, source_spec
    from nfgan.models.auxiliary.identity_net import IdentityNet, fit

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sources", nargs="*", default=list(DEFAULT_SOURCES), help="NAME=FOLDER:SPLITS (split file or "
                    "shipped split name)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--net", type=Path, help="report on this trained net instead of training one")
    ap.add_argument("--transfer", action="append", default=[], metavar="NAME=FOLDER",
                    help="a prepared folder of people the net did not learn (repeatable)")
    ap.add_argument("--report", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if (args.out is None) == (args.net is None):
        ap.error("give --out (train a net) or --net (report on a trained one)")
    transfer = []
    for spec in args.transfer:
        name, sep, folder = spec.partition("=")
        if not (sep and name and folder):
            ap.error(f"--transfer {spec!r}: expected NAME=FOLDER")
        transfer.append((name, folder))
    given = list(argv if argv is not None else sys.argv[1:])
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))

    parts = {"train": [], "val": []}
    used = []
    for spec in args.sources:
        try:
            name, folder, split = source_spec(spec)
        except SplitError as e:
            ap.error(str(e))
        namespace = Path(spec.rpartition(":")[2]).stem
        counts = {}
        for part in ("train", "val"):
            got = faces_of(folder, split[part], namespace)
            parts[part].append((name, *got))
            counts[part] = len(got[0])
        used.append({"name": name, "folder": folder, "splits": spec.rpartition(":")[2], "faces": counts})
        print(f"{name}: {counts['train']} training faces, {counts['val']} validation faces", file=sys.stderr)
    cat = lambda part, k: (np.concatenate([p[k] for p in parts[part]]) if k == 1 else  # noqa: E731
                           [x for p in parts[part] for x in p[k]])
    x, people = cat("train", 1), cat("train", 2)
    vx, vpeople = cat("val", 1), cat("val", 2)
    if args.net is not None:
        net = IdentityNet.load(args.net)
        history = None
        epochs = net.info.get("epochs", "?")
    else:
        net, history = fit(x, people, vx, vpeople, epochs=args.epochs, seed=args.seed, progress=True)
        epochs = args.epochs
        args.out.parent.mkdir(parents=True, exist_ok=True)
        net.save(args.out, sources=used, seed=args.seed, epochs=args.epochs,
                 licence="non-commercial research use only where it learned CK+, JAFFE or Yale faces")
        print(f"wrote {args.out} (epoch {net.info['epoch']}, {net.info['people']} people, validation EER "
              f"{100 * net.info['val_eer']:.1f} %)", file=sys.stderr)

    from nfgan.evaluation.evaluators import identity_evaluators

    dlib = identity_evaluators(["dlib"])[0]
    nets = {"this net": net.embed, "dlib": dlib.embed}
    lines = ["# nfgan's identity net: validation people", "",
             f"Command: `{' '.join(['python tools/train_identity_net.py'] + given)}`", "",
             f"Faces: {len(x)} training ({net.info['people']} people), {len(vx)} validation. Epoch chosen on the "
             f"validation people's equal error rate: {net.info['epoch']} of {epochs}.", "",
             "Cells: equal error rate / true-accept rate at 1 % false accepts, %, over all pairs of the group's faces "
             "(Euclidean distance of unit embeddings; dlib: its 128-d descriptor). Turned faces count twice (as "
             "photographed and frontalised) in 'all pairs'.", "",
             "| set | pairs of | faces | people | " + " | ".join(nets) + " |", "|---|---|---|---|" + "---|" * len(nets)]
    names_seen = []
    for name, faces, ppl, poses, expr in parts["val"]:
        if name in names_seen or len(faces) < 2:
            continue
        names_seen.append(name)
        lines += table_rows(name, faces, ppl, poses, expr, nets)
    for name, folder in transfer:
        from nfgan.data.dataset import PreparedDataset

        everyone = sorted(set(PreparedDataset(folder).column("subject")))
        lines += table_rows(f"{name} (every person, not learned)", *faces_of(folder, everyone, name), nets)
    args.report.mkdir(parents=True, exist_ok=True)
    write_text(args.report / "report.md", "\n".join(lines) + "\n")
    if history is not None:
        write_text(args.report / "report.json", json.dumps({"sources": used, "history": history, "chosen": net.info},
                                                           indent=1) + "\n")
    print(f"report: {args.report / 'report.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
