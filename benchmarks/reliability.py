"""Reliability suite: a generated fuzz corpus through `nfgan normalize` and `nfgan prepare`, tampered model files,
broken configs, and kill -9 during `nfgan prepare`, `nfgan train` and `nfgan fer cv`. Prints a table of tallies
(the README's "Reliability" table comes from it) and ends with one line::

    reliability inputs=N crashes=0 hangs=0 unreported=0 lost=0 kills=K identical=K

* crash: a traceback or an exit status other than 0/1/2 (batch commands), or an exception other than the
  documented error type (API loads); hang: no answer within the time limit; unreported: a bad input that is
  neither refused with a reason nor processed; lost: a file that was in the output folder before and changed.

Usage: ``python benchmarks/reliability.py [--quick] [--seed 0] [--keep DIR]`` (about 4 minutes on 2 cores;
``--quick`` about 1.5). Nothing here is committed data: the corpus is made by this script each run.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))
EXAMPLES = REPO / "examples" / "london"
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


def run_cli(argv: list[str], timeout: float) -> tuple[str, int | None, str]:
    """('ok' | 'crash' | 'hang', exit status, stderr) of one `nfgan` command in its own process group."""
    proc = subprocess.Popen([sys.executable, "-m", "nfgan", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=ENV, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return "hang", None, ""
    text = err.decode("utf-8", "replace")
    crashed = "Traceback (most recent call last)" in text or proc.returncode not in (0, 1, 2)
    return ("crash" if crashed else "ok"), proc.returncode, text


# ------------------------------------------------------------------------------------------------ corpus
def _png_bomb(side: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(b"\0" * (side + 1)) for _ in range(32)) + comp.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0]))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def make_corpus(folder: Path, rng: random.Random, scale: int) -> list[tuple[Path, str]]:
    """(path, kind) of a few hundred inputs: valid crops and photos, damaged, hostile and odd files."""
    folder.mkdir(parents=True)
    items: list[tuple[Path, str]] = []
    crop = np.random.default_rng(rng.randrange(1 << 30)).integers(0, 256, (64, 64), dtype=np.uint8)
    photos = sorted(EXAMPLES.glob("*/*.jpg"))
    valid = []
    for i in range(4):
        p = folder / f"crop{i}.png"
        Image.fromarray(np.roll(crop, i * 7, axis=1)).save(p)
        valid.append(p)
    for i, src in enumerate(photos[:: max(1, len(photos) // 4)][:4]):
        p = folder / f"photo{i}.jpg"
        shutil.copy(src, p)
        valid.append(p)
    items += [(p, "valid") for p in valid]
    blobs = [(p.suffix, p.read_bytes()) for p in valid]
    for i in range(15 * scale):                      # truncated at a random point
        suffix, blob = rng.choice(blobs)
        p = folder / f"trunc{i}{suffix}"
        p.write_bytes(blob[: rng.randrange(1, len(blob))])
        items.append((p, "truncated"))
    for i in range(15 * scale):                      # a few bytes flipped
        suffix, blob = rng.choice(blobs)
        b = bytearray(blob)
        for _ in range(rng.randrange(1, 20)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        p = folder / f"flip{i}{suffix}"
        p.write_bytes(bytes(b))
        items.append((p, "bit-flipped"))
    for i in range(5 * scale):
        p = folder / f"noise{i}{rng.choice(['.png', '.jpg', '.bmp'])}"
        p.write_bytes(rng.randbytes(rng.randrange(1, 5000)))
        items.append((p, "random bytes"))
    for i in range(2):
        p = folder / f"empty{i}.png"
        p.write_bytes(b"")
        items.append((p, "empty"))
    for i, side in enumerate((20000, 60000)):
        p = folder / f"bomb{i}.png"
        p.write_bytes(_png_bomb(side))
        items.append((p, "decompression bomb"))
    odd = {"deep16.png": Image.fromarray(crop.astype(np.uint16) * 257),
           "float.tif": Image.fromarray(crop.astype(np.float32) / 255.0),
           "cmyk.jpg": Image.fromarray(np.stack([crop] * 3, -1)).convert("CMYK"),
           "palette.png": Image.fromarray(crop).convert("P"),
           "alpha.png": Image.fromarray(np.stack([crop, crop], -1), "LA"),
           "bits.png": Image.fromarray(crop > 128)}
    for name, im in odd.items():
        im.save(folder / name)
        items.append((folder / name, "odd pixel format"))
    photo = Image.open(photos[0])
    exif = Image.Exif()
    exif[0x0112] = 6
    photo.transpose(Image.Transpose.ROTATE_90).save(folder / "rotated.jpg", exif=exif)
    items.append((folder / "rotated.jpg", "EXIF-rotated"))
    (folder / "page.eps").write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n")
    (folder / "vector.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"/>')
    Image.fromarray(crop).save(folder / "icon.ico")
    items += [(folder / "page.eps", "hostile format"), (folder / "vector.svg", "hostile format"),
              (folder / "icon.ico", "other format")]
    p = folder / ("n" * 240 + ".png")
    Image.fromarray(crop).save(p)
    items.append((p, "long name"))
    raw = os.path.join(os.fsencode(folder), b"bad\xff\xfename.png")
    with open(raw, "wb") as f:
        Image.fromarray(crop).save(f, format="PNG")
    items.append((Path(os.fsdecode(raw)), "non-UTF-8 name"))
    (folder / "dir.png").mkdir()
    os.mkfifo(folder / "fifo.png")
    os.symlink("/dev/zero", folder / "zero.png")
    items += [(folder / "dir.png", "directory"), (folder / "fifo.png", "FIFO"), (folder / "zero.png", "device")]
    items.append((folder / "missing.png", "missing"))
    return items


def check_batch(name: str, argv: list[str], out: Path, report: Path, items, timeout: float,
                done_file: Path | None = None) -> dict:
    """Run one batch command over the corpus; tally each input from its report file (and, for `prepare`,
    the prepared manifest's ``source_path`` column: the inputs it did)."""
    out.mkdir(parents=True, exist_ok=True)
    keep = out / "keep.txt"
    keep.write_text("written before the run\n")
    status, rc, err = run_cli(argv, timeout)
    rows = list(csv.DictReader(io.StringIO(report.read_text(encoding="utf-8")))) if report.is_file() else []
    if done_file is not None and done_file.is_file():
        rows += [{"source_path": r["source_path"], "status": "ok"}
                 for r in csv.DictReader(io.StringIO(done_file.read_text(encoding="utf-8")))]
    paths = {r.get("path") or r.get("source_path") or "": r for r in rows}
    per_kind: dict[str, list[int]] = {}
    unreported = 0
    for path, kind in items:
        shown = str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        row = paths.get(shown) or next((r for p, r in paths.items() if p.endswith(Path(shown).name)), None)
        done = row is not None and (row.get("status") == "ok" or row.get("reason") in (None, "")
                                    and row.get("status") != "error")
        refused = row is not None and not done and bool(row.get("detail") or row.get("reason"))
        t = per_kind.setdefault(kind, [0, 0, 0])
        t[0] += 1
        t[1] += done
        t[2] += refused
        unreported += not (done or refused)
    lost = int(keep.read_text() != "written before the run\n")
    return {"command": name, "inputs": len(items), "status": status, "exit": rc, "unreported": unreported,
            "lost": lost, "per_kind": per_kind, "stderr_tail": err[-400:] if status != "ok" else ""}


def images_section(work: Path, rng: random.Random, scale: int) -> list[dict]:
    items = make_corpus(work / "corpus", rng, scale)
    # a folder given to `nfgan normalize` is searched for images (this one holds none): not an input itself
    files = [(p, k) for p, k in items if k != "directory"]
    argv = ["normalize", *[str(p) for p, _ in items], "-o", str(work / "norm_out")]
    results = [check_batch("nfgan normalize", argv, work / "norm_out", work / "norm_out" / "normalize_report.csv",
                           files, timeout=600)]
    # `nfgan prepare` refuses a whole manifest that is not UTF-8 or names a path where nothing exists (a typo
    # in a dataset description, exit 2): those two are checked on their own below, not in the row corpus
    rows = [(p, k) for p, k in items if k not in ("missing", "non-UTF-8 name")]
    manifest = work / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "subject", "expression", "pose"])
        for i, (p, _) in enumerate(rows):
            w.writerow([str(p), f"s{i % 5}", "neutral", ""])
    out = work / "prep_out"
    prep = check_batch("nfgan prepare csv", ["prepare", "csv", str(manifest), str(out)], out,
                       out / "prepare_report.csv", rows, timeout=600, done_file=out / "manifest.csv")
    results.append(prep)
    for name, extra in (("missing", "a manifest row naming nothing"), ("non-UTF-8 name", "a non-UTF-8 manifest")):
        bad = work / f"manifest_{name[:3]}.csv"
        p = next(p for p, k in items if k == name)
        with open(bad, "w", newline="", encoding="utf-8", errors="surrogateescape") as f:
            f.write("path,subject,expression,pose\n" + str(p) + ",s0,neutral,\n")
        status, rc, err = run_cli(["prepare", "csv", str(bad), str(work / f"prep_{name[:3]}")], 120)
        results.append({"command": f"nfgan prepare csv ({extra})", "inputs": 1, "status": status, "exit": rc,
                        "unreported": int(rc != 2 or str(bad) not in err), "lost": 0,
                        "per_kind": {name: [1, 0, int(rc == 2 and str(bad) in err)]}, "stderr_tail": ""})
    return results


# ------------------------------------------------------------------------------------------------ models
def models_section(work: Path, rng: random.Random, scale: int) -> dict:
    from nfgan.checkpoint import CheckpointError
    from nfgan.inference import load_model, nfgan_model_path

    src = nfgan_model_path().read_bytes()
    header = int.from_bytes(src[:8], "little") + 8
    variants = []
    for i in range(8 * scale):
        variants.append((f"truncated{i}", src[: rng.randrange(1, len(src))]))
    for i in range(8 * scale):
        b = bytearray(src)
        pos = rng.randrange(8, header)                # inside the JSON header
        b[pos] = rng.randrange(256)
        variants.append((f"header-flip{i}", bytes(b)))
    for i in range(4 * scale):
        b = bytearray(src)
        for _ in range(64):
            b[rng.randrange(header, len(b))] = 0xFF   # float16 0xFFFF is NaN
        variants.append((f"data-flip{i}", bytes(b)))
    meta = json.loads(src[8:header])
    info = json.loads(meta["__metadata__"]["nfgan_model"])
    for name, change in [("latent_dim-huge", {"model": {**info["model"], "latent_dim": 10 ** 12}}),
                         ("kind-missing", {"kind": None}), ("kind-unknown", {"kind": "vqgan"}),
                         ("model-string", {"model": "x"}), ("format-2", {"format": 2}),
                         ("latent_dim-128", {"model": {**info["model"], "latent_dim": 128}})]:
        m = json.loads(json.dumps(meta))
        m["__metadata__"]["nfgan_model"] = json.dumps({**info, **change})
        text = json.dumps(m).encode()
        text += b" " * (-len(text) % 8)
        variants.append((name, len(text).to_bytes(8, "little") + text + src[header:]))
    tally = {"files": len(variants), "refused": 0, "loaded": 0, "crash": 0, "examples": []}
    folder = work / "models"
    folder.mkdir()
    for name, blob in variants:
        path = folder / f"{name}.safetensors"
        path.write_bytes(blob)
        try:
            g = load_model(path)
            x = np.asarray(g.normalize(np.zeros((1, 64, 64), np.uint8)))
            assert x.shape == (1, 64, 64)
            tally["loaded"] += 1          # a change the format cannot see (valid, finite weights)
        except CheckpointError as e:
            tally["refused"] += int(str(path) in str(e))
            tally["crash"] += int(str(path) not in str(e))
        except Exception as e:            # noqa: BLE001 - anything else is what this suite looks for
            tally["crash"] += 1
            tally["examples"].append(f"{name}: {type(e).__name__}: {e}"[:200])
    status, rc, err = run_cli(["normalize", "--model", str(folder / "truncated0.safetensors"),
                               str(EXAMPLES / "smiling_front" / "006_08.jpg"), "-o", str(work / "m_out")], 120)
    tally["cli"] = f"{status} (exit {rc})"
    tally["crash"] += int(status != "ok" or rc != 2)
    return tally


# ------------------------------------------------------------------------------------------------ configs
def configs_section(work: Path) -> dict:
    from nfgan.config import ConfigError
    from nfgan.fer.cv import load_config as fer_config
    from nfgan.training.config import load_config

    base = (REPO / "configs" / "nfgan_london.yaml").read_text()
    bad_values = {
        "train.batch_size": [0, -1, 2.5, "x", None, [1]], "train.steps": [0, -5, 1e30, "many"],
        "train.threads": [-1, 0], "train.bf16": [3, "maybe", 0.5], "log.checkpoint_every": [0, -1],
        "log.every": [0], "optim.enc.lr": [0, -1, ".nan", "fast"], "optim.enc.betas": [0.5, [0.5], [2, 0.9]],
        "model.latent_dim": [0, 10 ** 12, "big"], "model.init_std": [0, -1], "loss.id": [-1, "heavy"],
        "data.target_pose": ["upside"], "data.turned_targets": ["mirror"], "name": ["../../x", "/abs", ""],
        "feature_nets.identity": [{"factory": "subprocess:run", "args": ["true"]}, "dlib", 7],
        "model.type": ["stylegan", 3],
    }
    cases = []
    for key, values in bad_values.items():
        for v in values:
            cases.append((f"{key}={v!r}"[:60], base + "\n" + _nested(key, v)))
    cases += [("unknown key", base + "\nlogg: {every: 1}\n"), ("top-level list", "- 1\n- 2\n"),
              ("alias bomb", "a: &a [x, x, x, x, x, x, x, x, x]\n"
               + "".join(f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
                         for p, c in zip("abcdefgh", "bcdefghi"))),
              ("not YAML", "data: {root: [\n"), ("binary", "\x00\xff\xfe"), ("empty", "")]
    tally = {"files": 0, "refused": 0, "accepted": 0, "crash": 0, "examples": []}
    folder = work / "configs"
    folder.mkdir()
    for i, (name, text) in enumerate(cases):
        path = folder / f"c{i}.yaml"
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        tally["files"] += 1
        try:
            cfg = load_config(path)
            if name == "empty":
                tally["accepted"] += 1    # an empty file is the defaults
            else:
                ok = name.startswith("feature_nets.identity")   # a spec is checked when the net is built
                if ok:
                    from nfgan.models.auxiliary.feature_nets import build_feature_net
                    try:
                        build_feature_net(cfg["feature_nets"]["identity"])
                        tally["crash"] += 1
                    except ValueError:
                        tally["refused"] += 1
                else:
                    tally["crash"] += 1
                    tally["examples"].append(f"accepted: {name}")
        except ConfigError as e:
            tally["refused"] += int(str(path) in str(e))
            tally["crash"] += int(str(path) not in str(e))
        except Exception as e:            # noqa: BLE001
            tally["crash"] += 1
            tally["examples"].append(f"{name}: {type(e).__name__}: {e}"[:200])
    for i, text in enumerate(["epochs: 0\n", "lr: -1\n", "trunk: vgg\n", "classes: 5\n", "tta: sometimes\n"]):
        path = folder / f"fer{i}.yaml"
        path.write_text(text)
        tally["files"] += 1
        try:
            fer_config(path)
            tally["crash"] += 1
        except ConfigError as e:
            tally["refused"] += int(str(path) in str(e))
        except Exception:                 # noqa: BLE001
            tally["crash"] += 1
    return tally


def _nested(dotted: str, value) -> str:
    import yaml

    node: dict = {}
    cur = node
    parts = dotted.split(".")
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value
    return yaml.safe_dump(node)


# ------------------------------------------------------------------------------------------------ kills
def _kill_when(argv, ready, timeout=300.0) -> bool:
    from conftest import kill_when, start_nfgan

    try:
        return kill_when(start_nfgan(argv), ready, timeout)
    except AssertionError:
        return False


def _tree(folder: Path, skip=(".prepare_journal", "prepare_meta")) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(skip)}


def kills_section(work: Path, rng: random.Random, scale: int) -> list[dict]:
    from conftest import logged_losses, tiny_train_cli

    out = []
    # train: kill at a random step, resume; the losses and the final weights equal the uninterrupted run's
    base = tiny_train_cli(work, steps=10, checkpoint_every=2, sample_every=5)
    run_cli(base + ["--name", "full"], 600)
    full = logged_losses(work / "full")
    row = {"command": "nfgan train", "kills": 0, "identical": 0}
    for k in range(2 * scale):
        name = f"cut{k}"
        metrics = work / name / "metrics.jsonl"
        at = rng.randrange(1, 10)
        row["kills"] += _kill_when(base + ["--name", name],
                                   lambda: metrics.exists() and metrics.read_text().count("\n") >= at)
        run_cli(["train", "--resume", str(work / name), "--quiet"], 600)
        row["identical"] += int(logged_losses(work / name) == full)
    out.append(row)
    # prepare: kill after a random number of photos, run again; the folder equals the uninterrupted one
    src = work / "photos"
    shutil.copytree(EXAMPLES, src)
    args = ["prepare", "csv", str(src / "manifest.csv")]
    run_cli(args + [str(work / "prep_full")], 600)
    want = _tree(work / "prep_full")
    row = {"command": "nfgan prepare", "kills": 0, "identical": 0}
    for k in range(2 * scale):
        dst = work / f"prep_cut{k}"
        journal = dst / ".prepare_journal.jsonl"
        at = rng.randrange(1, 15)
        row["kills"] += _kill_when(args + [str(dst)], lambda: journal.exists() and journal.read_text().count("\n") >= at)
        run_cli(args + [str(dst)], 600)
        row["identical"] += int(_tree(dst) == want)
    out.append(row)
    # fer cv: kill once a fold is done, run again; every fold record equals the uninterrupted run's
    data, folds = _tiny_fer(work / "fer")
    fargs = ["fer", "cv", "--data", str(data), "--folds", str(folds), "--variant", "2b", "--epochs", "2",
             "--threads", "1"]
    run_cli(fargs + ["--out", str(work / "fer_full")], 600)
    row = {"command": "nfgan fer cv", "kills": 0, "identical": 0}
    for k in range(scale):
        dst = work / f"fer_cut{k}"
        target = dst / "folds" / f"fold_{k % 2:02d}.json"
        row["kills"] += _kill_when(fargs + ["--out", str(dst)], target.exists)
        run_cli(fargs + ["--out", str(dst)], 600)
        same = all({a: v for a, v in json.loads((dst / "folds" / f"fold_{i:02d}.json").read_text()).items()
                    if a not in ("cpu_seconds", "seconds")}
                   == {a: v for a, v in json.loads((work / "fer_full" / "folds" / f"fold_{i:02d}.json").read_text()).items()
                       if a not in ("cpu_seconds", "seconds")} for i in range(3))
        row["identical"] += int(same)
    out.append(row)
    return out


def _tiny_fer(folder: Path) -> tuple[Path, Path]:
    from conftest import make_tiny_fer

    folder.mkdir(parents=True, exist_ok=True)
    return make_tiny_fer(folder)


# ------------------------------------------------------------------------------------------------ main
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a smaller corpus and one kill per command")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", type=Path, help="keep the work folder here (default: a temporary folder)")
    args = p.parse_args()
    rng = random.Random(args.seed)
    scale = 1 if args.quick else 3
    work = Path(tempfile.mkdtemp(prefix="nfgan-reliability-")) if args.keep is None else args.keep
    os.environ.setdefault("NFGAN_CACHE", str(work / "cache"))
    t0 = time.time()
    batches = images_section(work, rng, scale)
    models = models_section(work, rng, scale)
    configs = configs_section(work)
    kills = kills_section(work, rng, 1 if args.quick else 2)
    print(f"\n{'what':<34} {'tried':>6} {'crashes':>8} {'hangs':>6} {'reported':>9} {'unreported':>11} {'lost':>5}")
    for b in batches:
        reported = sum(t[2] for t in b["per_kind"].values())
        print(f"{b['command'] + ' (inputs)':<34} {b['inputs']:>6} {int(b['status'] == 'crash'):>8} "
              f"{int(b['status'] == 'hang'):>6} {reported:>9} {b['unreported']:>11} {b['lost']:>5}   exit {b['exit']}")
        for kind, (n, done, refused) in sorted(b["per_kind"].items()):
            print(f"    {kind:<30} {n:>6}   processed {done:>3}   refused with a reason {refused:>3}")
        if b["stderr_tail"]:
            print("    stderr:", b["stderr_tail"].replace("\n", " | "))
    print(f"{'model files (load_model + CLI)':<34} {models['files']:>6} {models['crash']:>8} {0:>6} "
          f"{models['refused']:>9} {models['files'] - models['refused'] - models['loaded'] - models['crash']:>11} "
          f"{0:>5}   loaded as valid: {models['loaded']}, CLI: {models['cli']}")
    print(f"{'configs (train + fer)':<34} {configs['files']:>6} {configs['crash']:>8} {0:>6} {configs['refused']:>9} "
          f"{configs['files'] - configs['refused'] - configs['accepted'] - configs['crash']:>11} {0:>5}"
          f"   accepted as valid: {configs['accepted']}")
    for e in models["examples"] + configs["examples"]:
        print("    crash:", e)
    print(f"\n{'kill -9 then rerun / --resume':<34} {'kills':>6} {'identical':>10}")
    for k in kills:
        print(f"{k['command']:<34} {k['kills']:>6} {k['identical']:>10}")
    inputs = sum(b["inputs"] for b in batches) + models["files"] + configs["files"]
    crashes = sum(b["status"] == "crash" for b in batches) + models["crash"] + configs["crash"]
    hangs = sum(b["status"] == "hang" for b in batches)
    unreported = sum(b["unreported"] for b in batches)
    lost = sum(b["lost"] for b in batches)
    n_kills, identical = sum(k["kills"] for k in kills), sum(k["identical"] for k in kills)
    print(f"\n({time.time() - t0:.0f} s; work folder {work})")
    print(f"reliability inputs={inputs} crashes={crashes} hangs={hangs} unreported={unreported} lost={lost} "
          f"kills={n_kills} identical={identical}")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if crashes == hangs == unreported == lost == 0 and identical == n_kills else 1


if __name__ == "__main__":
    sys.exit(main())
