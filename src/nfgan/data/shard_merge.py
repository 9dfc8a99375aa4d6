"""``nfgan merge-prepared OUT SHARD_DIR [SHARD_DIR ...]``: join the folders of ``nfgan prepare --shard I/N``.

Each shard folder is a prepared folder of its own records (``nfgan.data.prepare``) plus ``prepare_shard.json``:
the shard's index and count, the size and sha256 of the whole record list, the manifest's columns, and the
position in the record list of every manifest row and every report row. The merge checks the shards, then
interleaves their rows by position and writes OUT:

* ``manifest.csv``, ``prepare_report.csv``, ``faces/*.png``, ``faces.npy``, ``landmarks.npy`` - byte for byte
  what one ``nfgan prepare`` run of the same records and options writes;
* ``prepare_meta.json`` - the same, except ``seconds`` (here: the shards' prepare times added up, plus the
  merge's) and ``written_utc`` (when the merge wrote it): both say when and how long, not what;
* ``.prepare_journal.jsonl`` - the shards' journal entries, so re-running ``nfgan prepare`` with the same
  arguments on OUT resumes (nothing to do; ``--retry-failed`` retries the failures) instead of starting over.

Refused, with the shard folder and the reason, before anything is written: a folder that is no finished shard
(no ``prepare_shard.json``, or one whose run stopped early: records still pending), files that disagree with
``prepare_shard.json``, shards of other options, versions, record lists or shard counts, a shard given twice,
and missing shards. OUT must not exist (or be an empty folder): the merge is written into a temporary folder
beside it and renamed to OUT in one step, so OUT is complete or absent. Memory: the manifest and report rows;
faces and landmarks are copied one shard row at a time (memory-mapped), PNGs one file at a time.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from nfgan.data.prepare import JOURNAL, SHARD_FILE, SHARD_FORMAT, PrepareError

#: prepare_meta.json's fields that are the same in a merge and in a single run - all but the timings
META_SAME = ("options", "src_root", "counts", "versions")
#: prepare_meta.json's fields that differ: how long the run took and when it wrote the file
META_RUN_SPECIFIC = ("seconds", "written_utc")


class MergeError(PrepareError):
    """A shard set that cannot be merged (the message names the shard folder and the reason)."""


@dataclass
class _Shard:
    folder: Path
    info: dict
    meta: dict
    columns: list[str]
    rows: list[list[str]]
    report: list[list[str]]

    @property
    def index(self) -> int:
        return int(self.info["shard"])

    @property
    def count(self) -> int:
        return int(self.info["of"])

    @property
    def label(self) -> str:
        return f"{self.folder} (shard {self.index}/{self.count})"


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    return (table[0], table[1:]) if table else ([], [])


def _load_json(path: Path, folder: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MergeError(f"{folder}: {what} cannot be read ({e}); re-run this shard's nfgan prepare command") from None


def read_shard(folder: str | os.PathLike) -> _Shard:
    """Read and check one shard folder on its own; :class:`MergeError` names the folder and the reason."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MergeError(f"{folder}: no such folder")
    info_path = folder / SHARD_FILE
    if not info_path.is_file():
        journal = folder / JOURNAL
        head = journal.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0] if journal.is_file() else ""
        if '"shard"' in head:
            raise MergeError(f"{folder}: its nfgan prepare --shard run has not finished (no {SHARD_FILE} yet); "
                             "re-run the same command to finish it")
        if (folder / "prepare_meta.json").is_file():
            raise MergeError(f"{folder}: prepared without --shard, so it is no shard (no {SHARD_FILE})")
        raise MergeError(f"{folder}: not a folder of nfgan prepare --shard (no {SHARD_FILE})")
    info = _load_json(info_path, folder, SHARD_FILE)
    need = ("shard", "of", "records", "records_sha256", "columns", "pending", "manifest", "manifest_ids", "report",
            "journal_ids")
    if not isinstance(info, dict) or info.get("format") != SHARD_FORMAT or any(k not in info for k in need):
        raise MergeError(f"{folder}: {SHARD_FILE} is not of format {SHARD_FORMAT} (another nfgan version?)")
    ints = ("shard", "of", "records", "pending")
    lists = ("manifest", "report", "manifest_ids", "journal_ids", "columns")
    if not all(type(info[k]) is int for k in ints) or not all(isinstance(info[k], list) for k in lists) \
            or not all(type(i) is int for k in ("manifest", "report") for i in info[k]) \
            or not 0 <= info["shard"] < info["of"]:
        raise MergeError(f"{folder}: {SHARD_FILE} is damaged; re-run this shard's nfgan prepare command")
    meta = _load_json(folder / "prepare_meta.json", folder, "prepare_meta.json")
    if not isinstance(meta, dict) or any(k not in meta for k in (*META_SAME, "seconds")):
        raise MergeError(f"{folder}: prepare_meta.json lacks fields; re-run this shard's nfgan prepare command")
    index, count, total = info["shard"], info["of"], info["records"]
    label = f"{folder} (shard {index}/{count})"
    if int(info["pending"]):
        raise MergeError(f"{label}: incomplete: {info['pending']} of its records are not prepared yet (a --limit "
                         "run, or one that was stopped); re-run the same nfgan prepare command to finish it")
    mine = set(range(index, total, count))
    done = list(info["manifest"]) + list(info["report"])
    if len(done) != len(set(done)) or set(done) != mine:
        raise MergeError(f"{label}: its manifest and report do not cover exactly its {len(mine)} records "
                         f"(they hold {len(set(done) & mine)} of them and {len(set(done) - mine)} others)")
    columns, rows = _read_csv(folder / "manifest.csv") if (folder / "manifest.csv").is_file() else ([], None)
    if rows is None or columns != info["columns"] or "id" not in columns or "path" not in columns:
        raise MergeError(f"{label}: manifest.csv is missing or its columns differ from {SHARD_FILE}")
    id_col, path_col = columns.index("id"), columns.index("path")
    if [r[id_col] if len(r) > id_col else None for r in rows] != list(info["manifest_ids"]) \
            or len(rows) != len(info["manifest"]):
        raise MergeError(f"{label}: manifest.csv does not match {SHARD_FILE} (a run stopped while writing?); "
                         "re-run this shard's nfgan prepare command")
    report_cols, report = _read_csv(folder / "prepare_report.csv") if (folder / "prepare_report.csv").is_file() \
        else ([], None)
    if report is None or len(report) != len(info["report"]) or report_cols != ["source_path", "reason", "detail"]:
        raise MergeError(f"{label}: prepare_report.csv is missing or does not match {SHARD_FILE}")
    size = int(meta["options"]["size"])
    for name, shape, dtype in (("faces.npy", (len(rows), size, size), np.uint8),
                               ("landmarks.npy", (len(rows), 68, 2), np.float32)):
        try:
            arr = np.load(folder / name, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise MergeError(f"{label}: {name} cannot be read ({e})") from None
        if arr.shape != shape or arr.dtype != dtype:
            raise MergeError(f"{label}: {name} is {arr.dtype} {arr.shape}, expected {np.dtype(dtype)} {shape}")
        del arr
    missing = [r[path_col] for r in rows if not (folder / r[path_col]).is_file()]
    if missing:
        raise MergeError(f"{label}: {len(missing)} face PNG(s) of its manifest are missing, e.g. {missing[0]}")
    return _Shard(folder, info, meta, columns, rows, report)


def _diff(a: dict, b: dict) -> str:
    keys = list(dict.fromkeys([*a, *b]))
    return ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in keys if a.get(k) != b.get(k))


def check_shards(shards: Sequence[_Shard]) -> None:
    """Refuse shards of different runs, a shard given twice, and missing shards (:class:`MergeError`)."""
    if not shards:
        raise MergeError("no shard folders given")
    ref = shards[0]
    for s in shards[1:]:
        if s.count != ref.count:
            raise MergeError(f"{s.folder}: shard {s.index}/{s.count}, but {ref.folder} is shard "
                             f"{ref.index}/{ref.count}: shards of different splits")
        if s.meta["options"] != ref.meta["options"]:
            raise MergeError(f"{s.folder}: prepared with other options than {ref.folder} "
                             f"({_diff(ref.meta['options'], s.meta['options'])})")
        if s.meta["versions"] != ref.meta["versions"]:
            raise MergeError(f"{s.folder}: prepared with other versions than {ref.folder} "
                             f"({_diff(ref.meta['versions'], s.meta['versions'])})")
        if s.meta["src_root"] != ref.meta["src_root"]:
            raise MergeError(f"{s.folder}: prepared from another source folder than {ref.folder} "
                             f"({s.meta['src_root']!r} vs {ref.meta['src_root']!r})")
        if (s.info["records"], s.info["records_sha256"]) != (ref.info["records"], ref.info["records_sha256"]):
            raise MergeError(f"{s.folder}: prepared from another record list than {ref.folder} ({s.info['records']} "
                             f"vs {ref.info['records']} records, sha256 {s.info['records_sha256'][:12]} vs "
                             f"{ref.info['records_sha256'][:12]}): other source files, paths or labels")
        if s.columns != ref.columns:
            raise MergeError(f"{s.folder}: manifest columns differ from {ref.folder}'s")
    seen: dict[int, Path] = {}
    for s in shards:
        if s.index in seen:
            same = os.path.realpath(seen[s.index]) == os.path.realpath(s.folder)
            raise MergeError(f"{s.folder}: shard {s.index}/{s.count} given twice"
                             + (" (the same folder)" if same else f" (also {seen[s.index]})"))
        seen[s.index] = s.folder
    missing = [i for i in range(ref.count) if i not in seen]
    if missing:
        raise MergeError(f"shard(s) {', '.join(f'{i}/{ref.count}' for i in missing)} missing: the {len(shards)} "
                         f"folder(s) given ({', '.join(str(s.folder) for s in shards)}) hold only "
                         f"{', '.join(f'{s.index}/{s.count}' for s in shards)}")


def check_new_folder(out: Path, error: type[Exception], not_empty: str) -> None:
    """Refuse (``error``) an OUT that is a file, a link or a folder with files in it: the commands that write a
    whole prepared folder (merge-prepared, synth-expressions) build it aside and move it there. ``not_empty``
    ends the message for a folder that is not empty."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise error(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        raise error(f"{out}: exists and is not empty{not_empty}")


def _check_out(out: Path) -> None:
    check_new_folder(out, MergeError, "; the merge writes a new folder (remove it or choose another OUT)")


def _fsync_file(f) -> None:
    f.flush()
    os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        _fsync_file(f)


def csv_text(header: Sequence[str], rows) -> str:
    """CSV text (``\\n`` line ends) of a header row and the rows."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(header))
    w.writerows(rows)
    return buf.getvalue()


def _write_stack(path: Path, order: list[tuple[int, int, int]], shards: Sequence[_Shard], name: str,
                 row_shape: tuple, dtype) -> None:
    """Write ``path`` (.npy) from the shards' arrays ``name``: row r = shards[k][local] for order[r] = (_, k, local)."""
    if not order:
        with open(path, "wb") as f:
            np.save(f, np.zeros((0, *row_shape), dtype))
            _fsync_file(f)
        return
    sources = [np.load(s.folder / name, mmap_mode="r") for s in shards]
    dst = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(len(order), *row_shape))
    for r, (_, k, local) in enumerate(order):
        dst[r] = sources[k][local]
    dst.flush()
    del dst, sources
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _journal_entries(shard: _Shard) -> list[str]:
    """The shard journal's last entry of every id its manifest or report holds, as JSON lines."""
    wanted = set(shard.info["journal_ids"])
    entries: dict[str, dict] = {}
    path = shard.folder / JOURNAL
    if path.is_file():
        with open(path, encoding="utf-8", errors="replace") as f:
            next(f, None)                               # the options line
            for line in f:
                try:
                    e = json.loads(line)
                except json.JSONDecodeError:
                    continue                            # a torn last line
                if isinstance(e, dict) and e.get("id") in wanted:
                    entries[e["id"]] = e
    return [json.dumps(entries[i], separators=(",", ":")) + "\n" for i in shard.info["journal_ids"] if i in entries]


def merge_prepared(out: str | os.PathLike, shard_dirs: Sequence[str | os.PathLike], progress: bool = True) -> dict:
    """Merge the shard folders ``shard_dirs`` into the new prepared folder ``out`` (see the module docstring).

    Returns prepare_meta.json's content; raises :class:`MergeError` (nothing written) for an unusable shard set or
    OUT, and ``OSError`` for a failed write (OUT then does not exist; the temporary folder is removed)."""
    t0 = time.time()
    out = Path(out)
    _check_out(out)
    shards = [read_shard(d) for d in shard_dirs]
    check_shards(shards)
    shards.sort(key=lambda s: s.index)
    ref = shards[0]
    columns = ref.columns
    path_col = columns.index("path")
    order = sorted((pos, k, local) for k, s in enumerate(shards) for local, pos in enumerate(s.info["manifest"]))
    report_order = sorted((pos, k, local) for k, s in enumerate(shards) for local, pos in enumerate(s.info["report"]))
    size = int(ref.meta["options"]["size"])

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.merge-", suffix=".tmp", dir=out.parent))
    try:
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)              # what mkdir gives a prepared folder, not mkdtemp's 0700
        (tmp / "faces").mkdir()
        from tqdm import tqdm

        for _, k, local in tqdm(order, desc="merge", unit="face", disable=not progress, file=sys.stderr,
                                dynamic_ncols=True):
            rel = shards[k].rows[local][path_col]
            with open(shards[k].folder / rel, "rb") as src, open(tmp / rel, "wb") as dst:
                shutil.copyfileobj(src, dst)
                _fsync_file(dst)
        _fsync_dir(tmp / "faces")
        rows = [shards[k].rows[local] for _, k, local in order]
        _write_text(tmp / "manifest.csv", csv_text(columns, rows))
        _write_text(tmp / "prepare_report.csv", csv_text(["source_path", "reason", "detail"],
                                                          (shards[k].report[local] for _, k, local in report_order)))
        _write_stack(tmp / "landmarks.npy", order, shards, "landmarks.npy", (68, 2), np.float32)
        _write_stack(tmp / "faces.npy", order, shards, "faces.npy", (size, size), np.uint8)

        reasons: dict[str, int] = {}
        for s in shards:
            for reason, n in s.meta["counts"]["reasons"].items():
                reasons[reason] = reasons.get(reason, 0) + int(n)
        methods: dict[str, int] = {}
        method_col, flipped_col = columns.index("method"), columns.index("flipped")
        for r in rows:
            methods[r[method_col]] = methods.get(r[method_col], 0) + 1
        seconds = sum(float(s.meta["seconds"]) for s in shards) + (time.time() - t0)
        meta = {"options": ref.meta["options"], "src_root": ref.meta["src_root"], "counts": {
            "records": int(ref.info["records"]), "aligned": len(rows), "failed": len(report_order),
            "pending": int(ref.info["records"]) - len(rows) - len(report_order),
            "reasons": dict(sorted(reasons.items())), "methods": methods,
            "flipped": sum(int(r[flipped_col]) for r in rows)},
            "seconds": round(seconds, 2), "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": ref.meta["versions"]}
        _write_text(tmp / "prepare_meta.json", json.dumps(meta, indent=2) + "\n")

        with open(tmp / JOURNAL, "w", encoding="utf-8") as f:
            f.write(json.dumps({"options": ref.meta["options"]}, separators=(",", ":")) + "\n")
            for s in shards:
                f.writelines(_journal_entries(s))
            _fsync_file(f)
        _fsync_dir(tmp)
        _check_out(out)                            # nobody wrote OUT meanwhile
        if out.is_dir():
            out.rmdir()
        os.rename(tmp, out)
        _fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


# ----------------------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser) -> None:
    parser.add_argument("out", metavar="OUT", help="the merged prepared folder to write (must not exist, or be empty)")
    parser.add_argument("shards", metavar="SHARD_DIR", nargs="+",
                        help="the OUT folders of `nfgan prepare ... --shard I/N`, all N of them, in any order")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.epilog = ("The result is byte for byte what one `nfgan prepare` run of the same dataset and options writes "
                     "(manifest.csv, faces/*.png, faces.npy, landmarks.npy, prepare_report.csv; prepare_meta.json "
                     "except its seconds and written_utc). Exit status: 0 merged, 2 refused (nothing written).")


def run(args) -> int:
    """``nfgan merge-prepared``: 0 merged, 2 refused or failed (OUT not written)."""
    try:
        meta = merge_prepared(args.out, args.shards, progress=not args.quiet)
    except MergeError as e:
        print(f"nfgan merge-prepared: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"nfgan merge-prepared: cannot write {args.out}: {e}", file=sys.stderr)
        return 2
    c = meta["counts"]
    reasons = ", ".join(f"{k}: {v}" for k, v in c["reasons"].items()) or "none"
    print(f"merged {len(args.shards)} shards into {args.out}: {c['aligned']}/{c['records']} faces prepared; "
          f"failures: {reasons}")
    if c["failed"]:
        print(f"details of every failure: {Path(args.out) / 'prepare_report.csv'}")
    return 0
