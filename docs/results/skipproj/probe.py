"""Probe `skipproj` (docs/experiments.md, "Taking the training people's expression directions out of the mid skips
(probe)"): an inference step on the U-Net's 16 px and 8 px skip maps, where the residual expression of people the
model never saw comes through (`docs/results/code/which_maps.md`).

The directions: for every frontal expressive photo of the model's own training people (the training split's people
among the model file's ``train_subjects``, in the real and synthetic folders its training config read; until the
correction of round 49 the whole ``train_subjects``, which also holds validation people the input rule's maps were
fit on), the difference between the
encoder's 16 px (and 8 px) map of the photo and that of the same person's frontal neutral photo (the same CK+
sequence's first frame where there is one), both as the generator reads them (the model's input rule). The top
``k`` right singular vectors ``U`` of those differences (per map size, not centred) span what an expression does to
that map for the training people. At inference, for inputs the model's rule treats as frontal, each of these skip
maps ``s`` becomes ``s - U U^T (s - c)``, with ``c`` the training people's mean neutral map: its part along the
expression directions is set to the average neutral face's. Only the skip connections change (the deeper maps are
computed from the photo's maps as they were); turned inputs keep the identity pull the model file records.

Variant ``lda`` (written after part 1): the directions that maximise the displacements' energy against the spread of
the training people's neutral faces around ``c`` (generalised eigenvectors inside the displacements' first 256
directions, orthonormalised), so that directions people differ along when neutral rank low.

Variants are model-name fragments, ``skipproj<k>`` (both sizes), ``skipproj<k>_8`` (the 8 px map only) or
``skipprojlda<k>`` (the lda directions, both sizes), e.g.
``runs/default_skipproj32.safetensors`` (a copy of the model under that name). Not a package option.

    python docs/results/skipproj/probe.py mechanics MODEL            # fit, then how much the directions explain
    python docs/results/skipproj/probe.py evaluate NAME=MODEL ... --data ...   # nfgan evaluate with the step
"""
import csv
import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[3]
from nfgan.cli import main as nfgan  # noqa: E402
from nfgan.data.frontalize import is_turned  # noqa: E402
from nfgan.inference.expression_directions import expression_specific, skip_maps  # noqa: E402
from nfgan.inference.generator import Generator, load_model  # noqa: E402
from nfgan.pixels import to_uint8, to_unit_batch  # noqa: E402

#: training source name -> prepared folder (frontal pairs only: the turned folders are not read)
FOLDERS = {"london": "out/london64", "ckplus": "out/ckplus_wn64", "jaffe": "out/jaffe64", "yale": "out/yale64",
           "canada": "out/canada64", "london_sfm": "out/london64_sfm", "canada_sfm": "out/canada64_sfm"}
SIDES = (16, 8)
PATTERN = re.compile(r"skipproj(lda)?(\d+)(_8)?")
RANK = 256          # lda: the generalised problem is solved inside the displacements' first RANK directions
_BASES: dict = {}
_spec = importlib.util.spec_from_file_location("fit_expression_directions", REPO / "tools/fit_expression_directions.py")
FIT_TOOL = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(FIT_TOOL)


def source_names(info: dict) -> list[str]:
    """The frontal sources the model's training read (every averaged second stage's, for a soup)."""
    parts = info.get("averaged_from") or [{"sources": info["config"]["data"]["sources"]}]
    names = {n for p in parts for n, s in p["sources"].items() if s is not None}
    return sorted(n for n in names if n in FOLDERS)


def split_of(info: dict, name: str) -> str:
    """The split file a training source of the model names."""
    parts = info.get("averaged_from") or [{"sources": info["config"]["data"]["sources"]}]
    return next(p["sources"][name]["splits"] for p in parts if p["sources"].get(name))


def training_pairs(info: dict, part: str = "train"):
    """(expressive, neutral) generator-input pairs of the model's training people (the ``part`` people of each
    source's split file among the file's ``train_subjects``, which also names the people the input rule's maps were
    fit on: validation people too): (folder, row) items for each side of the pairs, over all sources."""
    from nfgan.data.dataset import read_manifest
    from nfgan.data.pairs import load_splits

    ex, ne = [], []
    for name in source_names(info):
        subjects = set(info["train_subjects"]) & set(load_splits(split_of(info, name))[part])
        folder = REPO / FOLDERS[name]
        for i, j in FIT_TOOL.folder_pairs(read_manifest(folder / "manifest.csv"), subjects):   # the tool's pairing
            ex.append((folder, i))
            ne.append((folder, j))
    return ex, ne


def read(items):
    """(photos, poses, flips, landmarks) of (folder, row) items, in order."""
    cache, out = {}, ([], [], [], [])
    for folder, i in items:
        if folder not in cache:
            cache[folder] = (list(csv.DictReader(open(folder / "manifest.csv"))),
                             np.load(folder / "faces.npy", mmap_mode="r"), np.load(folder / "landmarks.npy", mmap_mode="r"))
        rows, faces, lms = cache[folder]
        out[0].append(np.asarray(faces[i]))
        out[1].append(rows[i]["pose"])
        out[2].append(rows[i].get("flipped", "0"))
        out[3].append(np.asarray(lms[i]))
    return np.stack(out[0]), out[1], out[2], np.stack(out[3])


def fit(g: Generator) -> dict:
    """side -> (V: D x D' right singular vectors, strongest first; c: the mean neutral map; singular values),
    from the model's training people; also the pair count."""
    key = str(g.info.get("source", id(g)))
    if key not in _BASES:
        ex, ne = training_pairs(g.info)
        gen = g.nets["gen"].eval()
        a = skip_maps(gen, g.generator_inputs(*read(ex)), SIDES)
        b = skip_maps(gen, g.generator_inputs(*read(ne)), SIDES)
        unique = torch.as_tensor(np.unique([f"{f}:{i}" for f, i in ne], return_index=True)[1])
        basis = {}
        for s in SIDES:
            _, sv, vh = torch.linalg.svd(a[s] - b[s], full_matrices=False)
            c = b[s].mean(0)
            basis[s] = (vh.T.contiguous(), c, sv)
            basis[("lda", s)] = (expression_specific(a[s] - b[s], b[s][unique] - c, RANK), c)
        basis["pairs"] = len(ex)
        basis["train_d"] = {s: a[s] - b[s] for s in SIDES}
        _BASES[key] = basis
    return _BASES[key]


def project(s: torch.Tensor, v: torch.Tensor, c: torch.Tensor, k: int) -> torch.Tensor:
    """``s - U U^T (s - c)`` with ``U`` the first ``k`` columns of ``v`` (``s``: N x C x H x W)."""
    u = v[:, :k]
    flat = s.flatten(1).double()
    return (flat - (flat - c) @ u @ u.T).to(s.dtype).view_as(s)


def projected_outputs(gen, x: torch.Tensor, basis: dict, lda: bool, k: int, sides) -> torch.Tensor:
    """The generator's outputs for inputs ``x`` with the skip maps of ``sides`` projected (eval mode); ``lda``: the
    expression-specific directions instead of the displacements' strongest."""
    plain = gen._encode

    def key(side):
        return ("lda", side) if lda else side

    def encode(h, keep_stats=False):
        skips, tone = plain(h, keep_stats)
        return [project(m, *basis[key(m.shape[-1])][:2], k) if m.shape[-1] in sides else m for m in skips], tone

    gen._encode = encode
    try:
        with torch.no_grad():
            return gen(x)
    finally:
        del gen._encode


def variant(name: str):
    m = PATTERN.search(name)
    return None if m is None else (bool(m.group(1)), int(m.group(2)), (8,) if m.group(3) else SIDES)


def projecting_normalize(self, images_u8, poses=None, flipped=None, batch_size=64, progress=False, desc="normalize",
                         landmarks=None, channels_last=False, bf16=False, identity_pull=True):
    out = Generator._plain_normalize(self, images_u8, poses, flipped, batch_size, progress, desc, landmarks,
                                     channels_last, bf16, identity_pull)
    name = Path(str(self.info.get("source", ""))).name
    v = variant(name)
    if v is None:
        return out
    basis = fit(self)
    gen = self.nets["gen"].eval()
    inputs = self.generator_inputs(images_u8, poses, flipped, landmarks)
    rows = np.arange(len(inputs)) if poses is None else np.flatnonzero([not is_turned(p) for p in poses])
    for s in range(0, len(rows), batch_size):
        r = rows[s:s + batch_size]
        out[r] = to_uint8(projected_outputs(gen, to_unit_batch(inputs[r]), basis, *v))
    print(f"{name}: {len(rows)} of {len(inputs)} faces projected ({'lda' if v[0] else 'strongest'}, k {v[1]}, sides {v[2]}, "
          f"{basis['pairs']} training pairs)", flush=True)
    return out


def install():
    Generator._plain_normalize = Generator.normalize
    Generator.normalize = projecting_normalize


def mechanics(model: str) -> int:
    """How much of the displacements the top-k directions explain: for the training pairs, and for the validation
    people's pairs of the same folders (people the directions never saw); and how much of a neutral photo's own
    deviation from the mean neutral map they hold (what the step takes from a neutral face)."""
    g = load_model(model)
    gen = g.nets["gen"].eval()
    basis = fit(g)
    ex, ne = training_pairs(g.info, "val")
    a = skip_maps(gen, g.generator_inputs(*read(ex)), SIDES)
    b = skip_maps(gen, g.generator_inputs(*read(ne)), SIDES)
    print(f"{model}: {basis['pairs']} training pairs, {len(ex)} validation pairs")
    print("| directions | side | k | training displacement explained | validation displacement explained | "
          "validation neutral deviation held |")
    print("|---|---|---|---|---|---|")
    for kind in ("strongest", "lda"):
        for s in SIDES:
            v, c = basis[("lda", s) if kind == "lda" else s][:2]
            d, dev, dtr = a[s] - b[s], b[s] - c, basis["train_d"][s]
            for k in (4, 8, 16, 32, 64, 128):
                u = v[:, :k]
                tr = ((dtr @ u) ** 2).sum() / (dtr ** 2).sum()
                va = ((d @ u) ** 2).sum() / (d ** 2).sum()
                held = ((dev @ u) ** 2).sum() / (dev ** 2).sum()
                print(f"| {kind} | {s} | {k} | {tr:.3f} | {va:.3f} | {held:.3f} |")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["mechanics"]:
        return mechanics(argv[1])
    if argv[:1] == ["evaluate"]:
        install()
        return nfgan(["evaluate", *argv[1:]])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
