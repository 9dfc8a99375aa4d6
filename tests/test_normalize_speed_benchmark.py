"""benchmarks/normalize_speed.py runs end to end on the shipped examples and models (tiny sizes)."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_benchmark_prints_four_positive_rates(capsys):
    spec = importlib.util.spec_from_file_location("nbench", REPO / "benchmarks" / "normalize_speed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--n", "24", "--repeats", "1", "--threads", "1", "--batch", "8"]) == 0
    out = capsys.readouterr().out
    rates = {m.group(1).strip(): (float(m.group(2)), float(m.group(3)))
             for m in re.finditer(r"^(\D[^\n]*?)\s+([\d.]+)\s+([\d.]+)$", out, re.M)}
    assert len(rates) == 4 and all(r > 0 for r, _ in rates.values())
    assert rates["same U-Net without frontalisation (baseline)"][1] == 1.0
    assert out.startswith("24 aligned faces (")
