"""Atomic writes: all-or-nothing replacement, no stray temporary files, normal file permissions."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from nfgan.atomic import atomic_open, save_image, save_safetensors, write_text


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "report.csv"
    write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w", encoding="utf-8") as f:
            f.write("half of the new cont")
            raise RuntimeError("crash in the middle")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.csv"]


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_files_get_the_permissions_of_a_plain_open(tmp_path, mask):
    old = os.umask(mask)
    try:
        write_text(tmp_path / "a.txt", "x")
        save_image(tmp_path / "b.png", np.zeros((4, 4), np.uint8))
        import torch

        save_safetensors(tmp_path / "c.safetensors", {"w": torch.zeros(2)})
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    want = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert want == 0o666 & ~mask
    for name in ("a.txt", "b.png", "c.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == want, name
