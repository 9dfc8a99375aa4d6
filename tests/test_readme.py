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
