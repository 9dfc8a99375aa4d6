"""benchmarks/normalize_speed.py runs end to end on the shipped examples and models (tiny sizes, --quick)."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_benchmark_prints_each_path_the_flop_bound_and_its_summary_line(capsys):
    spec = importlib.util.spec_from_file_location("nbench", REPO / "benchmarks" / "normalize_speed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--n", "24", "--repeats", "1", "--threads", "1", "--batch", "8", "--quick",
                     "--prepared", "none"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("24 aligned faces (")
    # path rows: name, faces/s, x today, net-only faces/s, x today, max diff (gray levels)
    rows = {m.group(1).strip(): [float(v) for v in m.group(2, 3, 4, 5)] + [int(m.group(6))]
            for m in re.finditer(r"^(\D[^\n]*?)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)$", out, re.M)}
    today = rows["torch fp32 (today's path)"]
    assert today[1] == 1.0 and today[4] == 0
    assert {"torch channels_last + inference_mode", "torch bf16 autocast"} <= set(rows)
    assert all(r[0] > 0 and r[2] > 0 for r in rows.values())
    assert rows["torch channels_last + inference_mode"][4] <= 1
    # the shipped default takes expression directions out: the same weights without them, timed; they move outputs
    nodirs = rows["torch fp32 without expression directions"]
    assert nodirs[0] > 0 and nodirs[2] > 0 and nodirs[4] > 1
    assert re.search(r"GFLOP per face; .* -> FLOP-bound limit \d+ faces/s fp32, \d+ faces/s bf16", out)
    assert re.search(r"^end to end, photo -> aligned \(HOG\) -> normalised, torch fp32 \(today's path\): [\d.]+ "
                     r"photos/s", out, re.M)
    for det, n in (("BlazeFace", 20), ("CNN", 2)):      # every detector; --quick: the slow CNN on 2 photos
        assert re.search(rf"^end to end, photo -> aligned \({det}\) -> normalised, torch fp32 \(today's path\): "
                         rf"[\d.]+ photos/s \(\d+ of {n} photos normalised", out, re.M), det
    last = out.strip().splitlines()[-1]
    m = re.fullmatch(r"normalize_speed faces_per_s=([\d.]+) ratio=([\d.]+)", last)
    assert m and float(m.group(1)) > 0 and float(m.group(2)) > 0
