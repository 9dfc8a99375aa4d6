"""Shared test fixtures. Tests that need ../shared/data use ``shared_data`` and skip cleanly without it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NFGAN_SHARED_DATA", REPO.parent / "shared" / "data"))

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the shared face data (london/, ckplus/, jaffe/, yale/); skips the test when absent."""
    if not (SHARED_DATA / "london" / "manifest.csv").is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Converted-weight cache per test session, so tests never depend on a user's ~/.cache."""
    monkeypatch.setenv("NFGAN_CACHE", str(tmp_path_factory.getbasetemp() / "nfgan-cache"))
