"""``nfgan fer ...``: cross-validation (``cv``), fold files (``folds``), pre-cropped sets (``precropped``) and
moving faces into their framing (``reframe``), a model trained on a whole set (``train``) and its predictions on
new faces (``predict``).

Examples::

    nfgan fer precropped --manifest ../shared/data/ckplus/manifest.csv --prefix peak/ --out out/ckplus_peak64_fer
    nfgan fer folds --data out/ckplus_peak64_fer --k 10 --seed 0 --out src/nfgan/assets/folds/ckplus_peak_10fold.json
    nfgan fer cv --data out/ckplus_peak64_fer --folds ckplus_peak_10fold \\
        --variant 2b --config configs/fer/ckplus.yaml --out runs/fer/ckplus_2b
    nfgan fer train --data out/ckplus_peak64_fer --config configs/fer/ckplus.yaml --variant 2b --out models/ck_2b
    nfgan fer predict --model models/ck_2b photos/*.png --out predictions.csv
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nfgan.device import DEVICE_HELP, DeviceError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="fer_command", metavar="FER_COMMAND")

    cv = sub.add_parser("cv", help="subject-independent k-fold cross-validation (resumable per fold)")
    _training_options(cv, seed_help="override the config's seed (fold k trains with seed*1000+k)")
    cv.add_argument("--folds", required=True,
                    help="fold file (JSON), or the name of one nfgan ships: ckplus_peak_10fold, ckplus_peak_8fold, "
                         "jaffe_loso (their subject ids; the images are yours)")
    cv.add_argument("--out", help="run directory (default runs/fer/<data>_<variant>)")
    cv.add_argument("--only-fold", type=int, nargs="+", help="run just these folds (0-based)")
    cv.add_argument("--validate", action="store_true",
                    help="model selection: score on a validation split carved from each fold's training "
                         "subjects (val_fraction); test subjects are not used")

    folds = sub.add_parser("folds", help="write a subject-independent fold file for a prepared dataset")
    folds.add_argument("--data", required=True, help="prepared dataset folder")
    folds.add_argument("--k", type=int, default=10, help="number of folds (default 10)")
    folds.add_argument("--loso", action="store_true", help="leave one subject out (one fold per subject)")
    folds.add_argument("--seed", type=int, default=0)
    folds.add_argument("--name", help="name stored in the file (default: the output's stem)")
    folds.add_argument("--out", required=True, help="output JSON")

    tr = sub.add_parser("train", help="train the FER network on every subject of a prepared set and save it")
    _training_options(tr, seed_help="override the config's seed")
    tr.add_argument("--out", required=True, help="output folder (fer_model.safetensors, training.json)")

    pr = sub.add_parser("predict", help="expressions of new faces with a model from `nfgan fer train`")
    pr.add_argument("--model", required=True, help="fer_model.safetensors, or the folder holding it")
    pr.add_argument("images", nargs="*", help="image files (cut as the model's training faces were: aligned, "
                                              "or resized crops for a model trained on a pre-cropped set)")
    pr.add_argument("--data", help="a prepared dataset folder instead of image files (faces used as they are; "
                                   "accuracy printed where its labels are the model's classes)")
    pr.add_argument("--out", required=True, help="CSV: one row per input, label, probability per class, error")
    pr.add_argument("--device", default="cpu", help=DEVICE_HELP)
    pr.add_argument("--max-crops", type=int, default=256,
                    help="crops per forward pass (memory: ten-crop models cut ten per face; default 256)")

    pc = sub.add_parser("precropped", help="import an already cropped face set (CK+48...) as a prepared folder")
    pc.add_argument("--manifest", required=True, help="CSV with path,subject,expression[,pose] (paths relative to it)")
    pc.add_argument("--prefix", default="", help="keep only rows whose path starts with this (e.g. peak/)")
    pc.add_argument("--size", type=int, default=64, help="output side in pixels (default 64; PIL bicubic)")
    pc.add_argument("--out", required=True, help="output prepared folder")

    rf = sub.add_parser("reframe", help="move a prepared set's faces into a pre-cropped set's framing (to train "
                                        "on both: --extra-data)")
    rf.add_argument("--data", required=True, help="prepared folder whose faces are moved (e.g. out/jaffe64_fer)")
    rf.add_argument("--like", required=True, help="pre-cropped prepared folder whose framing they get "
                                                  "(e.g. out/ckplus_peak64_fer from `nfgan fer precropped`)")
    rf.add_argument("--out", required=True, help="output prepared folder (same ids, labels and subjects)")
    rf.add_argument("--quiet", action="store_true", help="no progress bar")


def _training_options(p: argparse.ArgumentParser, seed_help: str) -> None:
    """What ``cv`` and ``train`` share: the data, the variant and its references, the options file."""
    p.add_argument("--data", required=True, help="prepared dataset folder (manifest.csv + faces.npy)")
    p.add_argument("--variant", default="2b", choices=["softmax", "2b", "2b_aug"],
                   help="softmax only, 2B[N+M]Softmax, or 2B[N+M]Softmax + NFGAN augmentation (default 2b)")
    p.add_argument("--augment", help="NFGAN checkpoint, or a prepared folder of normalised faces (2b_aug)")
    p.add_argument("--augment-subjects", help="file listing the subjects the NFGAN was trained on "
                                              "(when the checkpoint does not record them)")
    p.add_argument("--config", help="YAML options (configs/fer/ckplus.yaml); defaults in nfgan.fer.cv.SCHEMA")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override one option, e.g. --set epochs=5 --set tta=true (repeatable)")
    p.add_argument("--epochs", type=int, help="override the config's epochs")
    p.add_argument("--seed", type=int, help=seed_help)
    p.add_argument("--threads", type=int, help="torch threads (default from config: 2)")
    p.add_argument("--device", help=DEVICE_HELP + ": where the nets train (overrides the config)")
    p.add_argument("--extra-data", nargs="+", metavar="PREPARED",
                   help="prepared folders of other datasets (other people) added to every training set, never "
                        "tested on (overrides the config's extra_data; same framing: nfgan fer reframe)")


def run(args: argparse.Namespace) -> int:
    from nfgan.checkpoint import CheckpointError
    from nfgan.data.dataset import PreparedDatasetError
    from nfgan.fer.augment import AugmentLeakError
    from nfgan.fer.classifier import FERModelError
    from nfgan.fer.cv import FERConfigError
    from nfgan.fer.folds import FoldFileError

    cmd = getattr(args, "fer_command", None)
    if cmd is None:
        print("usage: nfgan fer {cv,folds,precropped,reframe,train,predict} ... (nfgan fer --help)",
              file=sys.stderr)
        return 2
    try:
        if cmd == "cv":
            return _cv(args)
        if cmd == "folds":
            return _folds(args)
        if cmd == "train":
            return _train(args)
        if cmd == "predict":
            return _predict(args)
        if cmd == "precropped":
            from nfgan.fer.precropped import prepare_precropped

            out = prepare_precropped(args.manifest, args.out, size=args.size, prefix=args.prefix)
            print(f"wrote {out}")
            return 0
        if cmd == "reframe":
            from nfgan.fer.precropped import reframe_dataset

            methods = reframe_dataset(args.data, args.like, args.out, progress=not args.quiet)
            print(f"wrote {args.out}: {sum(methods.values())} faces ({methods})")
            return 0
    except (FERConfigError, FoldFileError, PreparedDatasetError, AugmentLeakError, FileNotFoundError,
            FERModelError, DeviceError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if cmd == "predict" else 1    # predict is a batch command: 2 = nothing could run
    return 2


def _cv(args) -> int:
    from nfgan.fer.cv import run_cv

    out = args.out or str(Path("runs") / "fer" / f"{Path(args.data).name}_{args.variant}")
    summary = run_cv(args.data, args.folds, out, variant=args.variant, config=args.config,
                     overrides={"epochs": args.epochs, "threads": args.threads, "seed": args.seed,
                                "device": args.device,
                                "extra_data": args.extra_data}, augment=args.augment,
                     augment_subjects=args.augment_subjects, only_fold=args.only_fold,
                     validate=args.validate, sets=args.sets)
    print(f"{out}: {summary['folds_done']}/{summary['folds_total']} folds, mean {summary['split']} accuracy "
          f"{summary['mean_accuracy']:.4f} +- {summary['std_accuracy']:.4f}")
    print(json.dumps({k: (round(v, 4) if v is not None else None)
                      for k, v in summary["per_class_accuracy"].items()}))
    return 0


def _train(args) -> int:
    from nfgan.fer.classifier import train_model

    path = train_model(args.data, args.out, variant=args.variant, config=args.config,
                       overrides={"epochs": args.epochs, "threads": args.threads, "seed": args.seed,
                                  "device": args.device, "extra_data": args.extra_data},
                       augment=args.augment, augment_subjects=args.augment_subjects, sets=args.sets)
    print(f"wrote {path}")
    return 0


def _predict(args) -> int:
    import csv
    import io

    import numpy as np

    from nfgan.atomic import write_text
    from nfgan.fer.classifier import FERClassifier
    from nfgan.fer.cv import FERConfigError

    if bool(args.images) == bool(args.data):
        raise FERConfigError("give either image files or --data PREPARED_FOLDER")
    clf = FERClassifier(args.model, device=args.device)
    truth = None
    if args.data:
        from nfgan.data.dataset import PreparedDataset

        ds = PreparedDataset(args.data)
        if ds.size != clf.image_size:
            raise FERConfigError(f"{args.data}: faces are {ds.size} px, {clf.path} expects {clf.image_size}")
        names = [r["id"] for r in ds.records]
        faces, ok, failed = np.asarray(ds.images, dtype=np.uint8), list(range(len(ds))), {}
        truth = ds.column("expression")
    else:
        names = [str(p) for p in args.images]
        faces, ok, failed = clf.faces_from_images(args.images)
    probs = clf.predict_proba(faces, max_crops=max(1, args.max_crops)) if len(ok) else np.zeros((0, len(clf.classes)))
    by_row = dict(zip(ok, probs))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["input", "expression", *[f"p_{c}" for c in clf.classes], *(["true"] if truth else []), "error"])
    for i, name in enumerate(names):
        p = by_row.get(i)
        cells = [""] * (1 + len(clf.classes)) if p is None else [clf.classes[int(p.argmax())], *(f"{v:.4f}" for v in p)]
        w.writerow([name, *cells, *([truth[i]] if truth else []), failed.get(i, "")])
    write_text(args.out, buf.getvalue())
    for i in sorted(failed):
        print(f"skipped {failed[i]}", file=sys.stderr)
    print(f"wrote {args.out}: {len(ok)} face(s) classified, {len(failed)} failed")
    if truth:
        known = [i for i in ok if truth[i] in clf.classes]
        if known:
            acc = np.mean([clf.classes[int(by_row[i].argmax())] == truth[i] for i in known])
            print(f"accuracy on the {len(known)} faces labelled with the model's classes: {acc:.4f}")
    return 0 if ok else 1


def _folds(args) -> int:
    from nfgan.data.dataset import PreparedDataset
    from nfgan.fer.folds import leave_one_subject_out, make_subject_folds, save_folds

    ds = PreparedDataset(args.data)
    subjects, labels = ds.column("subject"), ds.column("expression")
    if args.loso:
        folds, method = leave_one_subject_out(subjects), "leave-one-subject-out"
    else:
        folds, method = make_subject_folds(subjects, labels, args.k, args.seed), "stratified-greedy-by-rarest-class"
    src = ds.meta.get("source_manifest")   # portable name: "<source folder>/<prefix>" rather than a local path
    dataset_name = f"{Path(src).parent.name}/{ds.meta.get('prefix', '')}".rstrip("/") if src else ds.root.name
    save_folds(args.out, folds, name=args.name or Path(args.out).stem, dataset=dataset_name, seed=args.seed,
               method=method)
    sizes = [sum(1 for s in subjects if s in set(f)) for f in folds]
    print(f"wrote {args.out}: {len(folds)} folds, images per fold {sizes}")
    return 0
