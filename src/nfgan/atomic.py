"""Atomic file writes: a reader (or a crash) never sees a half-written file.

Everything the project writes that a user keeps (checkpoints, manifests, images, reports) goes through here:
write to a temporary file in the same folder, flush and fsync, then ``os.replace`` onto the final name.
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    mask = os.umask(0o022)   # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[io.IOBase]:
    """Open a temporary sibling of ``path`` for writing; on success it replaces ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 files; give the result the permissions a plain open() would (0666 & ~umask)
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def remove_temp_files(*folders: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that writes interrupted by a kill left in ``folders`` (``.NAME.*.tmp``, made
    by :func:`atomic_open`); returns them. Call it only on folders the caller owns (a run, a prepared set)."""
    stale = [p for d in map(Path, folders) if d.is_dir() for p in d.glob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink()
    return stale


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def save_image(path: str | os.PathLike, image, format: str | None = None) -> None:
    """Save a PIL image or a uint8 numpy array (HxW or HxWxC) atomically; format from the suffix by default."""
    import numpy as np
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    fmt = format or {".jpg": "JPEG", ".jpeg": "JPEG"}.get(Path(path).suffix.lower(), Path(path).suffix[1:].upper() or "PNG")
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    write_bytes(path, buf.getvalue())


def save_safetensors(path: str | os.PathLike, tensors: dict, metadata: dict | None = None) -> None:
    """Save a dict of torch tensors as safetensors, atomically."""
    from safetensors.torch import save

    write_bytes(path, save({k: v.detach().contiguous().cpu() for k, v in tensors.items()},
                           metadata={k: str(v) for k, v in (metadata or {}).items()}))
