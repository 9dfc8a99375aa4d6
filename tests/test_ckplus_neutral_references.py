"""tools/ckplus_neutral_references.py on a fake CK+ folder built from a shipped London photo."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

from nfgan.data.dataset import PreparedDataset
from nfgan.fer.precropped import framing, prepare_precropped

from conftest import load_script

REPO = Path(__file__).resolve().parents[1]


def _tool():
    return load_script("tools/ckplus_neutral_references.py")


def test_a_neutral_crop_framed_like_the_peak_crops_comes_back_unchanged(tmp_path):
    """The 'neutral' face is the very crop of the 'peak' set, so moving it into the peak framing is the
    identity up to resampling; a tighter crop of it lands on the same face."""
    ck = tmp_path / "ck"
    photo = Image.open(REPO / "tests" / "data" / "london_001_front.jpg").convert("L")
    w, h = photo.size
    loose = photo.crop((int(0.28 * w), int(0.30 * h), int(0.72 * w), int(0.74 * h))).resize((48, 48), Image.LANCZOS)
    tight = photo.crop((int(0.32 * w), int(0.34 * h), int(0.68 * w), int(0.70 * h))).resize((48, 48), Image.LANCZOS)
    for sub, img in (("peak/happy/S001_001_00000009.png", loose), ("with_neutral/neutral/S001_001_00000001.png", loose),
                     ("with_neutral/neutral/S001_002_00000001.png", tight)):
        (ck / sub).parent.mkdir(parents=True, exist_ok=True)
        img.save(ck / sub)
    with open(ck / "manifest.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["path", "subject", "expression", "pose"])
        wr.writerow(["peak/happy/S001_001_00000009.png", "S001", "happy", "frontal"])
        wr.writerow(["with_neutral/neutral/S001_001_00000001.png", "S001", "neutral", "frontal"])
        wr.writerow(["with_neutral/neutral/S001_002_00000001.png", "S001", "neutral", "frontal"])
    peak = prepare_precropped(ck / "manifest.csv", tmp_path / "peak", prefix="peak/")
    assert _tool().main([str(ck), str(peak), str(tmp_path / "refs")]) == 0
    refs = PreparedDataset(tmp_path / "refs")
    meta = json.loads((tmp_path / "refs" / "normalize_meta.json").read_text())
    assert meta["methods"] == {"landmarks": 2} and meta["train_subjects"] == []
    assert framing(refs) == framing(PreparedDataset(peak))   # so they can be extra data beside the peak set
    assert refs.column("subject") == ["S001", "S001"] and refs.column("expression") == ["neutral", "neutral"]
    want = np.asarray(PreparedDataset(peak).images[0], dtype=float)
    same, tighter = (np.asarray(refs.images[i], dtype=float) for i in range(2))
    inner = (slice(8, 56), slice(8, 56))
    assert np.abs(same - want)[inner].mean() < 1.5
    assert np.abs(tighter - want)[inner].mean() < 8.0
    # the unaligned tight crop is a different framing: far from the peak face before reframing
    raw_tight = np.asarray(tight.resize((64, 64), Image.BICUBIC), dtype=float)
    assert np.abs(raw_tight - want)[inner].mean() > 3 * np.abs(tighter - want)[inner].mean()
