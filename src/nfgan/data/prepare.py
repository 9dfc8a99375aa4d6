"""``nfgan prepare``: turn a dataset's photos into a prepared dataset of aligned gray faces.

``nfgan prepare DATASET SRC OUT`` reads SRC with the adapter DATASET (``nfgan.data.adapters``), aligns every photo
(``nfgan.data.align``) and writes OUT in the format of ``nfgan.data.dataset`` (manifest.csv, faces/<id>.png, faces.npy,
landmarks.npy, prepare_report.csv, prepare_meta.json).

Robustness and resuming:

* Every input gets an outcome: an aligned face, or a row in ``prepare_report.csv`` with a fixed ``reason``
  (see ``REASONS``) and a ``detail``. One bad file never stops the run.
* Work is never lost: each face's PNG is written atomically, then one JSON line is appended (and flushed) to
  ``OUT/.prepare_journal.jsonl``. Re-running the same command skips every id already in the journal (and,
  with ``--retry-failed``, retries the failures), then rebuilds manifest.csv, landmarks.npy, faces.npy and
  the report atomically from the journal. Ids are derived from the photo's path relative to SRC, so they are
  the same on every run.
* Both cores: with ``workers > 1`` a process pool aligns photos, each worker loading dlib's models once; the
  main process does all writing. A tqdm bar shows rate and ETA.
* Options are checked (``check_options``) before anything is written, and a journal that holds no finished
  photo (a run that stopped before its first photo) never blocks a re-run with other options.
* One OUT folder, one process: a run holds an advisory lock (``flock``) on OUT, so a second run started on the
  same folder (two shards given one OUT) is refused instead of mixing its journal with the first one's.

Several machines (``--shard I/N``, ``nfgan.data.shard``): a shard prepares the records whose index in the
sorted record list is I modulo N into its own OUT - a prepared folder of those records in today's format, plus
``prepare_shard.json`` (which records are in its manifest and report, a digest of the whole record list) - and
``nfgan merge-prepared OUT SHARD_DIR...`` (``nfgan.data.shard_merge``) assembles the shards into the folder a
single run would have written.

Exit status of ``nfgan prepare`` (``run``): 0 every input prepared; 1 some inputs failed (each in
``prepare_report.csv`` with its reason; the others are prepared) - 0 instead for a shard taken from torchrun's
RANK / WORLD_SIZE, since torchrun stops every other process when one exits non-zero; 2 nothing could run (bad
arguments, an unreadable dataset or manifest, an OUT folder prepared with other options or not writable).
"""
from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from nfgan.atomic import atomic_open, remove_temp_files, save_image, write_text
from nfgan.data.align import DETECTORS
from nfgan.data.dataset import MANIFEST_COLUMNS, write_pack
from nfgan.data.images import DEFAULT_MAX_PIXELS, IMAGE_REASONS, ImageReadError, read_gray_image
from nfgan.data.schema import POSE_FROM_YAW, FaceRecord
from nfgan.data.shard import SHARD_HELP, TORCHRUN, Shard, ShardError, shard_arg, shard_from_args

#: Reasons written to prepare_report.csv (``reason`` column).
REASONS = {
    **IMAGE_REASONS,
    "no face": "the detector found no face",
    "several faces": "several faces of similar size; none clearly dominates",
    "face too small": "face box smaller than the minimum",
    "landmarks failed": "the 49 landmarks do not fit the template (bad detection or extreme pose)",
    "duplicate record": "the same source file appears twice in the dataset's records",
    "error": "an unexpected error (detail has the exception)",
}

JOURNAL = ".prepare_journal.jsonl"
#: written by a shard (``--shard I/N``) beside its prepared files; read by ``nfgan merge-prepared``
SHARD_FILE = "prepare_shard.json"
SHARD_FORMAT = 1

#: Limits of the numeric options (the aligner refuses crops under 16 px).
MIN_SIZE, MAX_SIZE = 16, 4096
MAX_WORKERS = 256


class PrepareError(RuntimeError):
    """A problem with the whole run (not one photo), e.g. an OUT folder prepared with other options."""


class PrepareOptionError(PrepareError, ValueError):
    """An option value no run can use (found by ``check_options`` before anything is written)."""


def _check_int(name: str, value, lo: int, hi: int | None = None) -> None:
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= lo \
        and (hi is None or value <= hi)
    if not ok:
        bound = f"from {lo} to {hi}" if hi is not None else f"at least {lo}"
        raise PrepareOptionError(f"--{name.replace('_', '-')} must be a whole number {bound}, got {value!r}")


def check_options(size: int = 64, workers: int = 2, max_pixels: int = DEFAULT_MAX_PIXELS,
                  min_face: int | None = None, limit: int | None = None, padding: float = 0.25,
                  detector: str = "hog", precropped: str = "auto") -> None:
    """Refuse option values no run can use, before anything is read or written (``PrepareOptionError``)."""
    _check_int("size", size, MIN_SIZE, MAX_SIZE)
    _check_int("workers", workers, 1, MAX_WORKERS)
    _check_int("max_pixels", max_pixels, 1)
    if min_face is not None:
        _check_int("min_face", min_face, 1)
    if limit is not None:
        _check_int("limit", limit, 0)
    if not isinstance(padding, numbers.Real) or not math.isfinite(padding) or not -0.5 < padding <= 2.0:
        raise PrepareOptionError(f"padding must be a number above -0.5 and at most 2, got {padding!r}")
    if precropped not in ("auto", "on", "off"):
        raise PrepareOptionError(f"--precropped must be auto, on or off, got {precropped!r}")
    if detector not in DETECTORS:
        raise PrepareOptionError(f"--detector must be one of {', '.join(DETECTORS)}, got {detector!r}")


# ----------------------------------------------------------------------------------------------------------
# Ids


def face_id(source_path: str, src_root: str | os.PathLike) -> str:
    """Stable file-system-safe id: the file stem plus 8 hex digits of the path relative to ``src_root``."""
    try:
        rel = os.path.relpath(os.path.abspath(source_path), os.path.abspath(src_root))
    except ValueError:            # another drive on Windows
        rel = os.path.abspath(source_path)
    rel = rel.replace(os.sep, "/")
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(source_path).stem).strip("._") or "face"
    return f"{stem[:60]}-{hashlib.sha1(rel.encode('utf-8')).hexdigest()[:8]}"


# ----------------------------------------------------------------------------------------------------------
# One photo (runs in a worker process)

_ALIGNER = None
_OPTIONS: dict = {}


def _init_worker(options: dict) -> None:
    global _ALIGNER, _OPTIONS
    from nfgan.data.align import FaceAligner

    _OPTIONS = dict(options)
    _ALIGNER = FaceAligner(size=options["size"], detector=options["detector"], padding=options["padding"],
                           min_face=options["min_face"], flip=options["flip"])


def _process(task: tuple[str, str, bool]) -> dict:
    """Align one photo; never raises. Returns a dict with ``status`` 'ok' (crop, landmarks...) or 'failed'."""
    from nfgan.data.align import AlignError

    face_id_, path, precropped = task
    try:
        img = read_gray_image(path, _OPTIONS["max_pixels"])
        if precropped:
            face = _ALIGNER.align_precropped(img, fallback=_OPTIONS["resize_fallback"])
        else:
            face = _ALIGNER.align(img)
    except (ImageReadError, AlignError) as e:
        return {"id": face_id_, "status": "failed", "reason": e.reason, "detail": e.detail}
    except MemoryError:
        return {"id": face_id_, "status": "failed", "reason": "too large", "detail": "out of memory decoding"}
    except Exception as e:  # one bad file must never stop the run
        return {"id": face_id_, "status": "failed", "reason": "error", "detail": f"{type(e).__name__}: {e}"}
    return {"id": face_id_, "status": "ok", "crop": face.crop, "landmarks": face.landmarks68.tolist(),
            "yaw_deg": None if not math.isfinite(face.yaw_deg) else round(face.yaw_deg, 2),
            "flipped": face.flipped, "method": face.method,
            "fit_error": None if not math.isfinite(face.fit_error) else round(face.fit_error, 5),
            "n_faces": face.n_faces, "source_size": list(img.size)}


# ----------------------------------------------------------------------------------------------------------
# Journal


class _Journal:
    """Append-only JSON-lines log of finished photos; the first line holds the options."""

    def __init__(self, path: Path, options: dict, overwrite: bool, shard: Shard | None = None):
        self.path = path
        self.entries: dict[str, dict] = {}
        if (path.exists() or path.is_symlink()) and not path.is_file():
            raise PrepareError(f"{path} is not a regular file; remove it")
        if path.is_file() and overwrite:
            path.unlink()
        if path.is_file():
            text = path.read_bytes().decode("utf-8", errors="replace")
            lines = text.splitlines()
            header = _loads(lines[0]) if lines else None
            entries = [e for e in map(_loads, lines[1:]) if isinstance(e, dict) and "id" in e]  # torn lines ignored
            is_header = isinstance(header, dict) and isinstance(header.get("options"), dict)
            if not entries and (is_header or not text.strip() or text.startswith('{"options"')):
                path.unlink()              # no finished photo: nothing to keep, whatever its options were
            elif not is_header:
                raise PrepareError(f"{path} is not a prepare journal; remove it or use --overwrite")
        if path.is_file():
            old = {k: header["options"].get(k) for k in _RESULT_OPTIONS}
            new = {k: options.get(k) for k in _RESULT_OPTIONS}
            if old != new:
                diff = ", ".join(f"{k}: {old[k]!r} -> {new[k]!r}" for k in _RESULT_OPTIONS if old[k] != new[k])
                raise PrepareError(f"{path.parent} was prepared with other options ({diff}); "
                                   "use another OUT folder or --overwrite")
            old_shard, new_shard = header.get("shard"), None if shard is None else str(shard)
            if old_shard != new_shard:
                was = "without --shard" if old_shard is None else f"as shard {old_shard}"
                now = "has no --shard" if new_shard is None else f"is shard {new_shard}"
                raise PrepareError(f"{path.parent} was prepared {was}, but this run {now}; give each shard its "
                                   "own OUT folder (or use --overwrite)")
            for entry in entries:
                self.entries[entry["id"]] = entry
            self.file = open(path, "a", encoding="utf-8")
            if not text.endswith("\n"):
                self.file.write("\n")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "w", encoding="utf-8")
            self._write({"options": options} if shard is None else {"options": options, "shard": str(shard)})
        self._since_sync = 0

    def _write(self, obj: dict) -> None:
        self.file.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self.file.flush()

    def add(self, entry: dict) -> None:
        self._write(entry)
        self.entries[entry["id"]] = entry
        self._since_sync += 1
        if self._since_sync >= 25:
            os.fsync(self.file.fileno())
            self._since_sync = 0

    def close(self) -> None:
        if not self.file.closed:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()


def _loads(line: str):
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


#: Options that change the output; a journal written with other values cannot be resumed.
_RESULT_OPTIONS = ("size", "detector", "padding", "min_face", "flip", "precropped", "resize_fallback", "max_pixels")


# ----------------------------------------------------------------------------------------------------------
# The run


@dataclass
class PrepareResult:
    out_dir: str
    total: int
    aligned: int
    failed: int
    skipped_existing: int
    reasons: dict = field(default_factory=dict)
    methods: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def success_rate(self) -> float:
        return self.aligned / self.total if self.total else 0.0


def _precropped_flag(record: FaceRecord, mode: str):
    if mode == "on":
        return True
    if mode == "off":
        return False
    return bool(record.extra.get("precropped"))


def prepare_dataset(records: Sequence[FaceRecord], out_dir: str | os.PathLike, size: int = 64,
                    detector: str = "hog", workers: int = 2, precropped: str = "auto",
                    src_root: str | os.PathLike | None = None, padding: float = 0.25,
                    min_face: int | None = None, flip: bool = True, resize_fallback: bool = True,
                    max_pixels: int = DEFAULT_MAX_PIXELS, retry_failed: bool = False, overwrite: bool = False,
                    progress: bool = True, limit: int | None = None, shard: Shard | None = None) -> PrepareResult:
    """Align ``records`` into the prepared-dataset folder ``out_dir`` (resumable; see the module docstring).

    ``precropped``: "auto" (pre-cropped mode for records whose adapter set ``extra["precropped"]``), "on"
    (every record) or "off" (none). ``limit``: process at most this many new photos in this call (the manifest then covers
    only what is finished). ``shard``: prepare only the records at positions ``shard.index`` modulo
    ``shard.count`` of ``records`` (which must be the whole, ordered record list: duplicates are found over
    all of it) and write ``prepare_shard.json`` for ``nfgan merge-prepared``; the result counts that shard's
    records. Returns a :class:`PrepareResult`; raises :class:`PrepareError` for run-level problems (option
    values out of range - checked before anything is written -, OUT prepared with other options or as
    another shard, OUT in use by another run, dlib's models not loadable).
    """
    t0 = time.time()
    check_options(size=size, workers=workers, max_pixels=max_pixels, min_face=min_face, limit=limit,
                  padding=padding, detector=detector, precropped=precropped)
    records = list(records)
    out = Path(out_dir)
    (out / "faces").mkdir(parents=True, exist_ok=True)
    if src_root is None:
        src_root = os.path.commonpath([os.path.dirname(os.path.abspath(r.source_path)) for r in records]) \
            if records else "."
    options = {"size": int(size), "detector": detector, "padding": float(padding),
               "min_face": None if min_face is None else int(min_face), "flip": bool(flip),
               "precropped": precropped, "resize_fallback": bool(resize_fallback), "max_pixels": int(max_pixels)}

    ids = [face_id(r.source_path, src_root) for r in records]
    first = _first_positions(ids)
    positions = range(len(records)) if shard is None else shard.positions(len(records))
    lock = _lock_folder(out)
    try:
        journal = _Journal(out / JOURNAL, options, overwrite, shard)
        remove_temp_files(out, out / "faces")   # writes a kill interrupted (the folder is ours: the journal says so)
        try:
            todo, skipped = [], 0
            for i in positions:
                rec, fid = records[i], ids[i]
                if first[fid] != i:
                    continue                       # a duplicate record: reported, never prepared
                done = journal.entries.get(fid)
                if done is not None:
                    ok_done = done["status"] == "ok" and (out / "faces" / f"{fid}.png").is_file()
                    if ok_done or (done["status"] == "failed" and not retry_failed):
                        skipped += 1
                        continue
                todo.append((fid, rec.source_path, _precropped_flag(rec, precropped)))
            if limit is not None:
                todo = todo[:int(limit)]
            _run_tasks(todo, options, workers, journal, out, progress)
        finally:
            journal.close()
        result = _finalize(records, ids, journal.entries, out, options, src_root, time.time() - t0, shard)
    finally:
        _unlock_folder(lock)
    result.skipped_existing = skipped
    return result


def _first_positions(ids: Sequence[str]) -> dict[str, int]:
    """id -> position of its first record; any later record with the same id is a duplicate record."""
    first: dict[str, int] = {}
    for i, fid in enumerate(ids):
        first.setdefault(fid, i)
    return first


def _lock_folder(out: Path):
    """Hold an exclusive advisory lock on the folder ``out`` (``flock``); refuse when another run holds it.
    Returns the open descriptor, or None where folders cannot be locked (no fcntl, some network file systems)."""
    try:
        import fcntl
    except ImportError:            # pragma: no cover - not on Linux / macOS
        return None
    try:
        fd = os.open(out, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise PrepareError(f"{out} is being prepared by another run right now (two shards given the same OUT?); "
                           "give every run its own OUT folder, e.g. an OUT with {shard} in it") from None
    except OSError:
        os.close(fd)
        return None
    return fd


def _unlock_folder(fd) -> None:
    if fd is not None:
        os.close(fd)                # closing the descriptor releases the lock


def records_digest(records: Sequence[FaceRecord], ids: Sequence[str]) -> str:
    """sha256 of the ordered record list (every field, and each record's id): shards of one run share it."""
    h = hashlib.sha256()
    for rec, fid in zip(records, ids):
        item = [fid, rec.source_path, rec.subject, rec.expression, rec.pose, rec.dataset, rec.extra]
        h.update(json.dumps(item, sort_keys=True, default=str).encode("ascii"))
        h.update(b"\n")
    return h.hexdigest()


def _run_tasks(todo, options, workers, journal: _Journal, out: Path, progress: bool) -> None:
    if not todo:
        return
    from tqdm import tqdm

    bar = tqdm(total=len(todo), unit="img", desc="prepare", disable=not progress, dynamic_ncols=True,
               smoothing=0.1, file=sys.stderr)

    def handle(res: dict) -> None:
        if res["status"] == "ok":
            save_image(out / "faces" / f"{res['id']}.png", res.pop("crop"))
        journal.add(res)
        bar.update(1)

    workers = max(1, int(workers))
    try:
        try:
            # In this process first: a missing model fails here, once, instead of in every pool worker (a pool
            # re-creates workers whose initializer fails, forever); forked workers reuse the loaded models.
            _init_worker(options)
        except Exception as e:
            raise PrepareError(f"cannot set up the face aligner: {type(e).__name__}: {e}") from e
        if workers == 1 or len(todo) < 4:
            for task in todo:
                handle(_process(task))
        else:
            import multiprocessing as mp

            ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
            with ctx.Pool(workers, initializer=_init_worker, initargs=(options,)) as pool:
                for res in pool.imap_unordered(_process, todo, chunksize=2):
                    handle(res)
    finally:
        bar.close()


def _pose(recorded: str, yaw_deg: float | None) -> str:
    """The manifest's pose: what the dataset says, else the pose of the measured yaw (``POSE_FROM_YAW``)."""
    if recorded != POSE_FROM_YAW:
        return recorded
    from nfgan.data.align import pose_from_yaw

    return pose_from_yaw(float("nan") if yaw_deg is None else float(yaw_deg))


def manifest_columns(records: Sequence[FaceRecord]) -> list[str]:
    """manifest.csv's columns for a record list: the fixed ones, then every extra field in order of appearance."""
    extra_cols: list[str] = []
    for rec in records:
        for k in rec.extra:
            if k not in extra_cols and k not in MANIFEST_COLUMNS and k != "precropped":
                extra_cols.append(k)
    return list(MANIFEST_COLUMNS) + ["method", "fit_error"] + extra_cols


def _finalize(records, ids, entries: dict, out: Path, options: dict, src_root, seconds: float,
              shard: Shard | None = None) -> PrepareResult:
    """Rebuild manifest.csv, landmarks.npy, faces.npy, prepare_report.csv, prepare_meta.json (all atomic) for
    the records of ``shard`` (all records when None); a shard also gets ``prepare_shard.json``, written last.
    Columns and duplicates are judged over all ``records``, so a shard's rows are the single run's rows."""
    import csv
    import io

    shard_file = out / SHARD_FILE
    shard_file.unlink(missing_ok=True)       # a shard rewrites it last; an unsharded folder has none
    positions = range(len(records)) if shard is None else shard.positions(len(records))
    first = _first_positions(ids)
    rows, lms, report = [], [], []
    row_pos, report_pos, journal_ids = [], [], []
    reasons: dict[str, int] = {}
    methods: dict[str, int] = {}
    columns = manifest_columns(records)
    extra_cols = columns[len(MANIFEST_COLUMNS) + 2:]
    for i in positions:
        rec, fid = records[i], ids[i]
        if first[fid] != i:
            report.append((rec.source_path, "duplicate record", f"same file as id {fid}"))
            report_pos.append(i)
            reasons["duplicate record"] = reasons.get("duplicate record", 0) + 1
            continue
        e = entries.get(fid)
        if e is None:
            continue                       # not processed yet (limit) - not a failure
        if e["status"] != "ok" or not (out / "faces" / f"{fid}.png").is_file():
            reason = e.get("reason", "error")
            report.append((rec.source_path, reason, e.get("detail", "")))
            report_pos.append(i)
            journal_ids.append(fid)
            reasons[reason] = reasons.get(reason, 0) + 1
            continue
        methods[e["method"]] = methods.get(e["method"], 0) + 1
        row = {"id": fid, "path": f"faces/{fid}.png", "subject": rec.subject, "expression": rec.expression,
               "pose": _pose(rec.pose, e.get("yaw_deg")), "yaw_deg": "" if e.get("yaw_deg") is None else e["yaw_deg"],
               "flipped": int(bool(e["flipped"])), "source_path": rec.source_path, "dataset": rec.dataset,
               "method": e["method"], "fit_error": "" if e.get("fit_error") is None else e["fit_error"]}
        for k in extra_cols:
            row[k] = rec.extra.get(k, "")
        rows.append(row)
        row_pos.append(i)
        journal_ids.append(fid)
        lms.append(np.asarray(e["landmarks"], dtype=np.float32))

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text(out / "manifest.csv", buf.getvalue())

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["source_path", "reason", "detail"])
    w.writerows(report)
    write_text(out / "prepare_report.csv", buf.getvalue())

    size = options["size"]
    with atomic_open(out / "landmarks.npy", "wb") as f:
        np.save(f, np.stack(lms) if lms else np.zeros((0, 68, 2), np.float32))
    if rows:
        write_pack(out)
    else:
        with atomic_open(out / "faces.npy", "wb") as f:
            np.save(f, np.zeros((0, size, size), np.uint8))

    result = PrepareResult(out_dir=str(out), total=len(positions), aligned=len(rows), failed=len(report),
                           skipped_existing=0, reasons=dict(sorted(reasons.items())), methods=methods,
                           seconds=round(seconds, 2))
    meta = {"options": options, "src_root": str(src_root), "counts": {
        "records": len(positions), "aligned": len(rows), "failed": len(report),
        "pending": len(positions) - len(rows) - len(report), "reasons": result.reasons, "methods": methods,
        "flipped": sum(r["flipped"] for r in rows)}, "seconds": result.seconds,
        "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "versions": _versions()}
    write_text(out / "prepare_meta.json", json.dumps(meta, indent=2) + "\n")
    if shard is not None:
        info = {"format": SHARD_FORMAT, "shard": shard.index, "of": shard.count,
                "rule": "the records whose index in the record list (sorted by source path) is shard modulo of",
                "records": len(records), "records_sha256": records_digest(records, ids), "columns": columns,
                "pending": meta["counts"]["pending"], "manifest": row_pos, "manifest_ids": [r["id"] for r in rows],
                "report": report_pos, "journal_ids": journal_ids}
        write_text(shard_file, json.dumps(info, separators=(",", ":")) + "\n")
    return result


def _versions() -> dict:
    out = {}
    try:
        import dlib

        out["dlib"] = dlib.__version__
    except Exception:  # pragma: no cover - dlib missing would have failed earlier
        pass
    import PIL

    out["pillow"] = PIL.__version__
    try:
        from importlib.metadata import version

        out["nfgan"] = version("nfgan")
    except Exception:
        pass
    return out


# ----------------------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser) -> None:
    parser.add_argument("dataset", metavar="DATASET", help="adapter name (see nfgan.data.adapters.ADAPTERS), e.g. london, csv, ckplus48")
    parser.add_argument("src", metavar="SRC", help="the dataset's root folder")
    parser.add_argument("out", metavar="OUT", help="output folder (created; re-running resumes); with a shard, "
                                                  "{shard} in it is replaced by the shard's index I")
    parser.add_argument("--size", type=int, default=64, help="crop side in pixels (default 64)")
    parser.add_argument("--detector", choices=DETECTORS, default="hog",
                        help="face detector: hog (dlib HOG, default), cnn (dlib MMOD, slow on CPU) or blazeface "
                             "(ported MediaPipe BlazeFace: faster; docs/preparation.md)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--precropped", choices=("auto", "on", "off"), default="auto",
                        help="treat inputs as small face crops (align_precropped): auto = where the adapter says so")
    parser.add_argument("--no-flip", action="store_true", help="do not mirror faces turned to the left")
    parser.add_argument("--no-resize-fallback", action="store_true",
                        help="pre-cropped faces whose landmarks fail are reported instead of resized")
    parser.add_argument("--min-face", type=int, default=None, help="smallest face box in pixels (default size/2)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help=f"refuse larger images (default {DEFAULT_MAX_PIXELS})")
    parser.add_argument("--retry-failed", action="store_true", help="on resume, retry photos that failed before")
    parser.add_argument("--overwrite", action="store_true", help="ignore a previous run's journal in OUT")
    parser.add_argument("--limit", type=int, default=None, help="process at most N new photos (for trials)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--shard", type=shard_arg, default=None, metavar="I/N",
                        help=SHARD_HELP + ". OUT then holds that shard only; `nfgan merge-prepared OUT SHARD_DIR...` "
                             "joins the N shard folders into the folder one run would have written")


def run(args) -> int:
    """``nfgan prepare``: 0 all inputs prepared, 1 some failed (see prepare_report.csv), 2 nothing could run."""
    from nfgan.data import adapters
    try:
        check_options(size=args.size, workers=args.workers, max_pixels=args.max_pixels, min_face=args.min_face,
                      limit=args.limit, detector=args.detector, precropped=args.precropped)
    except PrepareError as e:
        print(f"nfgan prepare: {e}", file=sys.stderr)
        return 2
    if args.dataset not in adapters.ADAPTERS:
        print(f"nfgan prepare: unknown dataset {args.dataset!r}; known: {', '.join(sorted(adapters.ADAPTERS))}",
              file=sys.stderr)
        return 2
    try:
        shard, shard_source = shard_from_args(getattr(args, "shard", None))
    except ShardError as e:
        print(f"nfgan prepare: {e}", file=sys.stderr)
        return 2
    if "{shard}" in args.out:
        if shard is None:
            print("nfgan prepare: OUT contains {shard} but no shard is given (--shard I/N, or RANK and WORLD_SIZE "
                  "from torchrun)", file=sys.stderr)
            return 2
        args.out = args.out.replace("{shard}", str(shard.index))
    src = Path(args.src)
    if not src.exists():
        print(f"nfgan prepare: {src}: no such folder", file=sys.stderr)
        return 2
    try:
        records = adapters.load(args.dataset, args.src)
    except (adapters.AdapterError, OSError) as e:
        print(f"nfgan prepare: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if shard is not None:
        print(f"shard {shard} (from {shard_source}): the {len(shard.positions(len(records)))} of {len(records)} "
              f"records whose index (sorted by source path) is {shard.index} modulo {shard.count} -> {out}",
              flush=True)
    if out.exists() and not out.is_dir():
        print(f"nfgan prepare: {out}: exists and is not a folder", file=sys.stderr)
        return 2
    try:
        res = prepare_dataset(records, args.out, size=args.size, detector=args.detector, workers=args.workers,
                              precropped=args.precropped, src_root=src if src.is_dir() else src.parent,
                              min_face=args.min_face,
                              flip=not args.no_flip, resize_fallback=not args.no_resize_fallback,
                              max_pixels=args.max_pixels, retry_failed=args.retry_failed,
                              overwrite=args.overwrite, progress=not args.quiet, limit=args.limit, shard=shard)
    except PrepareError as e:
        print(f"nfgan prepare: {e}", file=sys.stderr)
        return 2
    except OSError as e:       # OUT not writable, disk full... (finished photos stay in the journal)
        print(f"nfgan prepare: cannot write to {out}: {e}", file=sys.stderr)
        return 2
    reasons = ", ".join(f"{k}: {v}" for k, v in res.reasons.items()) or "none"
    methods = ", ".join(f"{k}: {v}" for k, v in res.methods.items())
    print(f"prepared {res.aligned}/{res.total} faces ({100 * res.success_rate:.1f}%) into {res.out_dir} "
          + (f"(shard {shard}) " if shard is not None else "")
          + f"in {res.seconds:.1f} s; failures: {reasons}" + (f"; methods: {methods}" if methods else ""))
    if shard is not None:
        print(f"when all {shard.count} shards are done: nfgan merge-prepared OUT SHARD_DIR [SHARD_DIR ...]")
    if res.failed:
        print(f"details of every failure: {Path(res.out_dir) / 'prepare_report.csv'}")
        if shard_source == TORCHRUN:
            return 0        # torchrun takes any non-zero exit for a crash and would stop the other shards
        return 1
    return 0
