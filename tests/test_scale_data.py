"""benchmarks/scale_data.py: the synthetic prepared sets it writes, and its child mode on a small set (opened
through memory maps: the faces are not loaded, resident memory grows by far less than their bytes)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import load_script

REPO = Path(__file__).resolve().parents[1]


def _bench():
    return load_script("benchmarks/scale_data.py")


@pytest.fixture(scope="module")
def bench():
    return _bench()


def test_built_set_is_a_prepared_folder(tmp_path, bench):
    from nfgan.data.dataset import PreparedDataset
    from nfgan.data.pairs import build_pairs, load_splits

    folder = tmp_path / "faces_1005"
    assert bench.build(folder, 1005) > 0
    assert bench.build(folder, 1005) is None            # reused: same size, finished marker
    assert not (folder / "faces").exists()              # no PNGs
    ds = PreparedDataset(folder)
    assert len(ds) == 1005 and ds.images.shape == (1005, 64, 64) and ds.landmarks.shape == (1005, 68, 2)
    assert isinstance(ds.images, np.memmap)
    assert len(ds.subjects()) == 101                    # 10 faces each, the last subject has 5
    flat = np.asarray(ds.images).reshape(len(ds), -1)
    assert len(np.unique(flat, axis=0)) == len(ds)      # no two rows alike
    assert flat.std() > 20
    targets = ds.indices(pose="frontal", expression="neutral")
    assert len(targets) == 101 and set(ds.column("subject")[i] for i in targets) == set(ds.subjects())
    assert {"left_3quarter", "right_profile", "frontal"} <= set(ds.column("pose"))
    splits = load_splits(folder / "splits.json")
    pairs = build_pairs(ds, splits["train"])
    per_subject = ds.by_subject()
    assert len(pairs) == sum(len(per_subject[s]) for s in splits["train"]) and not pairs.missing_targets
    assert sorted(len(v) for v in per_subject.values())[:2] == [5, 10]
    # another size in the same folder is rebuilt, not reused
    assert bench.build(folder, 1000) > 0 and len(PreparedDataset(folder)) == 1000


def test_sizes(bench):
    assert bench.parse_sizes("10k,100k,1M") == [10_000, 100_000, 1_000_000]
    assert bench.parse_sizes("2000") == [2000]
    for bad in ("ten", "50", "1.00001k"):
        with pytest.raises(Exception):
            bench.parse_sizes(bad)


def test_child_opens_memory_mapped(tmp_path, bench):
    n = 20_000                                          # 78 MB of faces: loading them would show in the RSS
    folder = tmp_path / f"faces_{n}"
    bench.build(folder, n)
    bench.evict(folder)                                 # read from disk, as the benchmark does
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "scale_data.py"), "--child", str(folder),
                        "--steps", "1", "--batch", "8"], stdout=subprocess.PIPE, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert p.returncode == 0, p.stdout
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("scale_data_child ")]
    assert len(lines) == 1, p.stdout
    r = json.loads(lines[0].split(" ", 1)[1])
    assert r["faces"] == n and r["subjects"] == n // 10 and r["face_mb"] == pytest.approx(n * 4096 / 2**20)
    assert r["train_pairs"] == 8 * n // 10 and r["val_pairs"] == n // 10
    assert r["images_type"] == "numpy.memmap" and r["images_memmap"] and r["landmarks_memmap"]
    assert r["open_s"] > r["data_s"] > 0 and r["images_per_s"] > 0
    assert r["peak_train_mb"] >= r["peak_open_mb"] > r["rss_before_mb"] > 0
    assert r["anon_end_mb"] > 0 and r["faces_resident_mb"] >= 0 and r["read_ms_per_step"] > 0
    assert 0 <= r["wait_ms_per_step"]
    if not r["peak_reset"]:
        pytest.skip("/proc/self/clear_refs not writable here: the RSS growth of the open cannot be measured")
    # the faces stay on disk: TrainingData's resident growth is a small part of their bytes
    assert r["data_growth_mb"] < 0.4 * r["face_mb"], json.dumps(r)
    # the table line and the final line the parent prints from such a result
    assert re.fullmatch(r"\s*20000\s+2000\s+reused\s+78\.1(\s+\d+\.?\d*){14}", bench.table_line(r, None))
    final = bench.final_line([r, {**r, "faces": 3}])
    assert re.fullmatch(r"scale_data sizes=20000,3 peak_rss_mb=(\d+),\1 open_s=(\d+\.\d\d),\2", final), final
