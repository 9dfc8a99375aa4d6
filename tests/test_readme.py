"""The README's Python API block runs as written and does what its comments say."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def test_readme_python_api_block_runs(monkeypatch):
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(REPO)
    scope: dict = {}
    exec(compile(block, "README.md (Python API)", "exec"), scope)
    assert scope["face"].crop.shape == (64, 64) and scope["face"].crop.dtype == np.uint8
    assert scope["out"].shape == (1, 64, 64) and scope["out"].dtype == np.uint8
    assert np.isfinite(scope["distance"]).all() and scope["distance"].shape == (1,)
    assert scope["labels"] == ["neutral"]


def test_readme_names_the_test_command_that_ci_runs():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert "make test" in text and "make demo" in text
    assert "make test" in (REPO / ".ci" / "run").read_text() and os.access(REPO / ".ci" / "run", os.X_OK)


def test_readme_first_tour_runs(tmp_path):
    """The README's 'first tour' block runs as written (every command once, on the example photos)."""
    import subprocess
    import sys

    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### A first tour"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    bin_dir = Path(sys.executable).parent
    script = "set -e\n" + "\n".join(
        ln if not ln.startswith("nfgan prepare") else ln.split("  #")[0] + " || [ $? -eq 1 ]"
        for ln in block.splitlines())
    env = {**os.environ, "OUT": str(tmp_path / "tour"), "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(["bash", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "tour"
    for f in ("faces/manifest.csv", "faces/splits.json", "normalized/124_07_sheet.png", "morph.png",
              "runs/tiny/checkpoints/step_00000003.safetensors", "eval/metrics.json", "fer_cv/folds/fold_00.json",
              "fer_model/fer_model.safetensors", "predictions.csv"):
        assert (out / f).is_file(), f
