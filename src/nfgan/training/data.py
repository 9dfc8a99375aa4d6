"""The training data of one run: the prepared faces of one or several folders (read through memory maps, never
loaded whole), the (input, target) pairs of the train and validation subjects, and the batches the models read.

Row space (:class:`FaceRows`): rows ``0..n-1`` are the prepared faces of every source, one folder after the
other; with mirroring (``data.flip_left_poses`` or ``data.mirror_pairs``) rows ``n..2n-1`` are their mirror
images; with ``data.frontalize_inputs`` the frontalised version of every turned input (and same-pose target)
row follows, with ``data.neutralize_shape`` the neutralised version of every other input row, and
``gen_rows[r]`` is the row the generator reads for input row ``r``. The mirroring and
frontalisation follow ``nfgan.data.generator_input.InputRule``, the rule inference applies too. A row is
read when a batch needs it: faces from the memory-mapped ``faces.npy`` of its folder (flipped for a mirror
row), frontalised rows from an in-memory table when they fit in ``FRONTALIZED_CACHE_BYTES`` and otherwise
frontalised on the fly (the same function, so the same pixels). Resident memory is therefore flat in the
number of faces: the label columns (``nfgan.data.dataset.ManifestColumns``) and a few int arrays per pair.

Several sources (``data.sources``): each prepared folder with its own subject split; pairs never cross folders;
``weight`` gives each source's share of a batch. Pre-cropped sources (CK+) leave a black frame around the face
in the 64 px framing; with ``empty_border: auto`` those pixels of a target are left out of the pixel loss
(``Batch.y_mask``).

Identity mixing (``data.identity_mix``, :mod:`nfgan.data.identity_mix`): a share of a batch's pairs is morphed
with another training pair of the same source (inputs with inputs, targets with targets), giving pairs of people
nobody photographed. Pairs with landmarks take part whose input the generator reads as stored (frontal, not
mirrored or warped) or, with ``identity_mix.turned``, any input: two photos of one view are morphed, then warped
by the input rule. The features of a mixed row are computed on the fly (``Batch.mixed``, ``Batch.x_real``).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from nfgan.config import ConfigError
from nfgan.data.dataset import PreparedDataset
from nfgan.data.framing_jitter import framing_augment, framing_params
from nfgan.data.frontalize import is_turned
from nfgan.data.generator_input import InputRule, MissingLandmarksError
from nfgan.data.identity_mix import mix_params, morph
from nfgan.data.pairs import TrainingPairs, build_pairs, load_splits
from nfgan.data.photometric import photometric_augment, photometric_params
from nfgan.models.base import Batch
from nfgan.pixels import to_unit_batch

#: frontalised rows are kept in memory up to this many bytes, beyond it they are made when read
FRONTALIZED_CACHE_BYTES = 256 << 20


@dataclass
class Draw:
    """The rows of one batch (this process's slice) and its augmentation settings, before any face is read."""

    x_rows: np.ndarray
    y_rows: np.ndarray
    g_rows: np.ndarray
    photometric: dict | None = None
    framing: dict | None = None
    mix: dict | None = None      # data.identity_mix: per row mixed / alpha, and the partner's input and target rows


@dataclass
class Source:
    """One prepared folder of a run."""

    name: str
    dataset: PreparedDataset
    splits: dict
    weight: float | None
    empty_border: str


def sources_of(cfg: dict) -> list[tuple[str, dict]]:
    """``(name, {root, splits, weight, empty_border})`` per source: ``data.sources``, or the one folder
    ``data.root`` with ``data.splits``."""
    d = cfg["data"]
    if d.get("sources"):
        return list(d["sources"].items())
    return [("data", {"root": d["root"], "splits": d["splits"], "weight": None, "empty_border": "off"})]


def empty_border_mask(faces: np.ndarray) -> np.ndarray:
    """Boolean ``N x S x S``: True where a pixel holds image content, False on the exactly-black region that
    touches the crop border (the empty frame a small pre-cropped face leaves when aligned into a larger crop)."""
    from scipy import ndimage

    faces = np.asarray(faces)
    out = np.ones(faces.shape, dtype=bool)
    for i, f in enumerate(faces):
        zero = f == 0
        if not (zero[0].any() or zero[-1].any() or zero[:, 0].any() or zero[:, -1].any()):
            continue
        lab, _ = ndimage.label(zero)
        edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
        edge = edge[edge > 0]
        out[i] = ~np.isin(lab, edge)
    return out


class FaceRows:
    """The row space of a run (module docstring): faces read on demand from the sources' memory maps."""

    def __init__(self, sources: list[Source], mirrors: bool, rule: InputRule):
        self.sources = sources
        self.rule = rule
        self.offsets = np.cumsum([0] + [len(s.dataset) for s in sources]).astype(np.int64)
        self.n = int(self.offsets[-1])
        self.size = sources[0].dataset.size
        self.mirrors = bool(mirrors)
        self.base = 2 * self.n if mirrors else self.n
        self.front_of = np.zeros(0, dtype=np.int64)    # per frontalised row: the (plain or mirror) row it shows
        self.front_cache: np.ndarray | None = None
        self.poses = np.concatenate([s.dataset.columns.values_of("pose") for s in sources]) \
            if self.n else np.zeros(0, dtype=object)

    def __len__(self) -> int:
        return self.base + len(self.front_of)

    def source_index(self, faces: np.ndarray) -> np.ndarray:
        """The source of each face index (< n)."""
        return np.searchsorted(self.offsets, faces, side="right") - 1

    def _by_source(self, faces: np.ndarray) -> list:
        src = self.source_index(faces)
        return [(k, np.flatnonzero(src == k), faces[src == k] - self.offsets[k]) for k in np.unique(src).tolist()]

    def faces(self, faces: np.ndarray) -> np.ndarray:
        """uint8 ``B x S x S`` of face indices (< n), read from the memory maps."""
        faces = np.asarray(faces, dtype=np.int64)
        out = np.empty((len(faces), self.size, self.size), dtype=np.uint8)
        for k, where, local in self._by_source(faces):
            out[where] = self.sources[k].dataset.images[local]
        return out

    def landmarks(self, faces: np.ndarray) -> np.ndarray:
        """float64 ``B x 68 x 2`` of face indices (NaN where a folder has no landmarks.npy)."""
        faces = np.asarray(faces, dtype=np.int64)
        out = np.full((len(faces), 68, 2), np.nan, dtype=np.float64)
        for k, where, local in self._by_source(faces):
            lms = self.sources[k].dataset.landmarks
            if lms is not None:
                out[where] = np.asarray(lms[local], dtype=np.float64)
        return out

    def plain(self, rows: np.ndarray) -> np.ndarray:
        """Rows below ``base``: faces, mirrored for mirror rows."""
        rows = np.asarray(rows, dtype=np.int64)
        out = self.faces(rows % self.n if self.n else rows)
        mirrored = rows >= self.n
        if mirrored.any():
            out[mirrored] = out[mirrored][..., ::-1]
        return out

    def _frontalize(self, base_rows: np.ndarray, who: str) -> np.ndarray:
        face = base_rows % self.n
        return self.rule.reshape(self.plain(base_rows), list(self.poses[face]), self.landmarks(face),
                                 mirrored=base_rows >= self.n, who=who, strict=True)

    def set_frontalized(self, base_rows: np.ndarray, who: str) -> np.ndarray:
        """Add the frontalised versions of ``base_rows`` (once); returns their row numbers. Made now (and kept)
        when they fit in :data:`FRONTALIZED_CACHE_BYTES`, else each time they are read."""
        base_rows = np.asarray(base_rows, dtype=np.int64)
        new = self.base + np.arange(len(base_rows), dtype=np.int64)
        if len(base_rows) * self.rule.channels * self.size * self.size <= FRONTALIZED_CACHE_BYTES:
            self.front_cache = self._frontalize(base_rows, who)
        else:
            # check every landmark now, so a missing one fails at start-up as it does with the cache
            missing = [int(r) for r, lm in zip(base_rows.tolist(), self._landmark_ok(base_rows)) if not lm]
            if missing:
                raise MissingLandmarksError(f"{who}: turned input(s) without landmarks cannot be frontalised: "
                                            f"rows {missing[:5]}")
        self.front_of = base_rows
        return new

    def _landmark_ok(self, base_rows: np.ndarray) -> np.ndarray:
        ok = np.empty(len(base_rows), dtype=bool)
        for i in range(0, len(base_rows), 65536):
            lm = self.landmarks(base_rows[i:i + 65536] % self.n)
            ok[i:i + 65536] = np.isfinite(lm).all(axis=(1, 2))
        return ok

    def read(self, rows) -> np.ndarray:
        """uint8 ``B x S x S`` of any rows (a frontalised row of a two-channel rule: its first channel)."""
        out = self.read_channels(rows)
        return out[:, 0] if out.ndim == 4 else out

    def read_channels(self, rows) -> np.ndarray:
        """What the generator reads for ``rows``: uint8 ``B x S x S``, or ``B x 2 x S x S`` with a two-channel input
        rule (``InputRule.channels``: a row that is not warped shows the same face in both channels)."""
        rows = np.asarray(rows, dtype=np.int64)
        front = rows >= self.base
        two = self.rule.channels == 2
        if not front.any():
            out = self.plain(rows)
            return np.stack([out, out], axis=1) if two else out
        out = np.empty((len(rows),) + ((2,) if two else ()) + (self.size, self.size), dtype=np.uint8)
        if (~front).any():
            plain = self.plain(rows[~front])
            out[~front] = plain[:, None] if two else plain
        k = rows[front] - self.base
        out[front] = self.front_cache[k] if self.front_cache is not None else \
            self._frontalize(self.front_of[k], "frontalised rows")
        return out


class TrainingData:
    def __init__(self, cfg: dict, device: torch.device):
        d = cfg["data"]
        self.cfg, self.device = cfg, device
        self.channels_last = bool(cfg["train"]["channels_last"])
        self.rule = InputRule.from_config(cfg)
        size = cfg["model"]["image_size"]
        self.sources: list[Source] = []
        for name, spec in sources_of(cfg):
            ds = PreparedDataset(spec["root"])
            if ds.size != size:
                raise ConfigError(f"{ds.root}: faces are {ds.size}px but model.image_size is {size}")
            splits = load_splits(spec["splits"] if spec["splits"] else ds.root / "splits.json")
            self.sources.append(Source(name, ds, splits, spec["weight"], spec["empty_border"]))
        weights = [s.weight for s in self.sources]
        if len(self.sources) > 1 and any(w is None for w in weights) and not all(w is None for w in weights):
            raise ConfigError("data.sources: give every source a weight, or none (then each training pair is "
                              "equally likely)")
        mirrors = d["flip_left_poses"] or d["mirror_pairs"]
        self.faces = FaceRows(self.sources, mirrors, self.rule)
        n = self.faces.n
        kw = dict(input_poses=d["input_poses"], input_expressions=d["input_expressions"],
                  target_pose=d["target_pose"], target_expression=d["target_expression"],
                  turned_targets=d["turned_targets"])
        offsets = self.faces.offsets[:-1].tolist()
        self.train = TrainingPairs.concatenate([build_pairs(s.dataset, s.splits["train"], **kw)
                                                for s in self.sources], offsets)
        self.val = TrainingPairs.concatenate([build_pairs(s.dataset, s.splits["val"], **kw)
                                              for s in self.sources], offsets)
        where = ", ".join(str(s.dataset.root) for s in self.sources)
        if len(self.train) == 0:
            raise ConfigError(f"{where}: no training pairs (train subjects with a "
                              f"{d['target_pose']} {d['target_expression']} face and inputs)")
        self._mirror_rows(n)
        self.missing_targets = sorted(set(self.train.missing_targets) | set(self.val.missing_targets))
        if self.missing_targets:
            m = self.missing_targets
            warnings.warn(f"{len(m)} subject(s) have no {d['target_pose']} {d['target_expression']} face "
                          f"(or no same-pose target, listed with the pose) and are not trained on: "
                          f"{m[:10]}{' ...' if len(m) > 10 else ''}")
        self.gen_rows = np.arange(len(self.faces), dtype=np.int64)
        if self.rule.frontalize or self.rule.neutralize:
            self._add_frontalized_rows(n, where)
        self.input_weights = self._input_weights()
        self.mask_sources = np.asarray([s.empty_border == "auto" for s in self.sources], dtype=bool)
        self.mix_cfg = d["identity_mix"]
        if self.mix_cfg["p"] > 0:
            self._mix_pools(n)
        # fixed sample batch: spread over the validation inputs (training inputs when there is no val split)
        src = self.val if len(self.val) else self.train
        k = min(int(cfg["log"]["sample_count"]), len(src))
        pick = np.linspace(0, len(src) - 1, k).round().astype(np.int64)
        self.sample_rows = (src.inputs[pick], src.first_targets()[pick])

    def __len__(self) -> int:
        return len(self.faces)

    @property
    def train_subjects(self) -> list[str]:
        """Every training subject's name (over all sources: a name in two folders is listed once)."""
        return sorted({str(x) for s in self.sources for x in s.splits["train"]})

    def subject_codes(self) -> np.ndarray:
        """Per row of the row space (mirror and frontalised rows included), an integer naming its person. People
        are told apart by subject name alone, over all sources: a folder of synthetic faces made from another
        folder's people (``nfgan synth-expressions``) names them as that folder does. Two different people who
        share a name in two folders get one code (for ``loss.id_rank`` they are then neither pulled nor pushed)."""
        f = self.faces
        names = np.concatenate([np.asarray(s.dataset.columns.values_of("subject"), dtype=str) for s in self.sources])
        code = np.unique(names, return_inverse=True)[1].astype(np.int64)
        rows = np.arange(len(f), dtype=np.int64)
        front = rows >= f.base
        rows[front] = f.front_of[rows[front] - f.base]
        return code[rows % f.n]

    def source_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """The source index of each row (a frontalised row: the source of the face it shows)."""
        rows = np.asarray(rows, dtype=np.int64)
        base = np.where(rows >= self.faces.base, self.faces.front_of[np.maximum(rows - self.faces.base, 0)]
                        if len(self.faces.front_of) else rows, rows)
        return self.faces.source_index(base % max(self.faces.n, 1))

    def _input_weights(self) -> torch.Tensor | None:
        """Per training input its sampling weight (each source's share split evenly over its inputs), or
        ``None`` when every input is equally likely (one source, or no weights given)."""
        if len(self.sources) == 1 or all(s.weight is None for s in self.sources):
            return None
        src = self.source_of_rows(self.train.inputs)
        counts = np.bincount(src, minlength=len(self.sources)).astype(np.float64)
        share = np.asarray([s.weight for s in self.sources], dtype=np.float64)
        share = np.where(counts > 0, share, 0.0)
        if share.sum() <= 0:
            raise ConfigError("data.sources: the sources with a weight above 0 have no training pairs")
        return torch.from_numpy(share[src] / np.maximum(counts[src], 1))

    def _mix_pools(self, n: int) -> None:
        """Which rows may be mixed (``mix_ok``, per row of the row space: a stored face with landmarks, read by the
        generator as stored unless ``identity_mix.turned`` lets the input rule's warped rows in too; a target must
        be a stored face) and the training-input positions a partner is drawn from (input and every target of its
        group mixable), per source, or with ``turned`` per source, pose and mirroring (:meth:`_mix_key`)."""
        f = self.faces
        self._pose_code = np.unique(f.poses, return_inverse=True)[1].astype(np.int64) if f.n else np.zeros(0, np.int64)
        ok = np.zeros(len(self.gen_rows), dtype=bool)
        if self.mix_cfg["turned"]:
            cand = np.arange(f.base, dtype=np.int64)
        else:
            cand = np.arange(n, dtype=np.int64)
            cand = cand[self.gen_rows[:n] == cand]
        for i in range(0, len(cand), 65536):
            rows = cand[i:i + 65536]
            ok[rows] = np.isfinite(f.landmarks(rows % n)).all(axis=(1, 2))
        self.mix_ok = ok
        self.mix_target_ok = ok & (np.arange(len(ok)) < n)
        t = self.train
        targets_ok = np.asarray([self.mix_target_ok[t.group_rows[t.group_start[g]:t.group_start[g] + t.group_size[g]]]
                                 .all() for g in range(len(t.group_size))], dtype=bool)
        usable = ok[t.inputs] & targets_ok[t.input_group]
        key = self._mix_key(t.inputs)
        self.mix_pool = {int(k): np.flatnonzero(usable & (key == k)) for k in np.unique(key[usable]).tolist()}
        if not self.mix_pool:
            raise ConfigError("data.identity_mix: no training pair can be mixed (mixing needs landmarks.npy and, "
                              "without identity_mix.turned, frontal inputs read as stored)")

    def _mix_key(self, x_rows: np.ndarray) -> np.ndarray:
        """The group a partner must share with an input row: its source, and with ``identity_mix.turned`` also its
        pose and whether it is mirrored (two photos of one view morph into a photo of that view)."""
        src = self.source_of_rows(x_rows)
        if not self.mix_cfg["turned"]:
            return src
        f, poses = self.faces, self._pose_code
        x_rows = np.asarray(x_rows, dtype=np.int64)
        return (src * (int(poses.max(initial=0)) + 1) + poses[x_rows % max(f.n, 1)]) * 2 + (x_rows >= f.n)

    def _draw_mix(self, x_rows: np.ndarray, y_rows: np.ndarray, rng: np.random.Generator) -> dict:
        """Which rows of a batch are mixed, by how much, with which partner pair (:meth:`_mix_key`)."""
        key = self._mix_key(x_rows)
        pool_size = np.asarray([len(self.mix_pool.get(int(k), ())) for k in key.tolist()], dtype=np.int64)
        params = mix_params(self.mix_ok[x_rows] & self.mix_target_ok[y_rows] & (pool_size > 1), rng, self.mix_cfg)
        px, py = x_rows.copy(), y_rows.copy()
        for i in np.flatnonzero(params["mixed"]).tolist():
            pool = self.mix_pool[int(key[i])]
            pos = pool[min(int(params["u"][i, 0] * len(pool)), len(pool) - 1)]
            px[i] = self.train.inputs[pos]
            py[i] = self.train.pick_targets(np.asarray([pos]), params["u"][i, 1:2])[0]
        return {"mixed": params["mixed"], "alpha": params["alpha"], "x": px, "y": py}

    def _mirror_rows(self, n: int) -> None:
        """Point mirrored inputs at their mirror rows (row r + n): the input rule's mirroring, and
        ``data.mirror_pairs`` (mirrored frontal pairs, input and target together). Frontal targets are never
        mirrored; a same-pose target is mirrored with its input."""
        d = self.cfg["data"]
        poses = self.faces.poses
        if self.rule.flip_left_poses:
            flipped = np.concatenate([np.asarray(s.dataset.column("flipped"), dtype=object) for s in self.sources])
            swap = self.rule.mirror_mask(list(poses), list(flipped))
            swap_target = swap & (poses != d["target_pose"])
            for pairs in (self.train, self.val):
                pairs.map_rows(lambda r: r + np.where(swap[r], n, 0))
                pairs.map_targets(lambda r: r + np.where(swap_target[r], n, 0))
        if d["mirror_pairs"]:   # validation pairs stay as they are
            self.train = self.train.with_mirrors(
                (self.train.inputs < n) & (poses[self.train.inputs % max(n, 1)] == "frontal"), n)

    def _add_frontalized_rows(self, n: int, where: str) -> None:
        """Add the warped version of every input or target row the input rule warps - turned rows frontalised
        (``data.frontalize_inputs``), other input rows neutralised (``data.neutralize_shape``; targets stay as
        they are) - where a mirror row r >= n is face r - n mirrored; point ``gen_rows`` at them, and the
        pairs' turned targets at their frontalised rows."""
        poses = self.faces.poses
        inputs = [pairs.inputs for pairs in (self.train, self.val)]
        targets = [pairs.group_rows for pairs in (self.train, self.val)]
        rows = np.unique(np.concatenate(inputs + targets)) if inputs + targets else np.zeros(0, np.int64)
        turned = np.asarray([is_turned(p) for p in poses[rows % max(n, 1)]], dtype=bool) if len(rows) else \
            np.zeros(0, bool)
        front = rows[turned] if self.rule.frontalize else rows[:0]
        other = np.setdiff1d(np.unique(np.concatenate(inputs)), rows[turned]) if self.rule.neutralize else rows[:0]
        rows = np.concatenate([front, other])
        if not len(rows):
            return
        setting = "data.frontalize_inputs" if len(front) else "data.neutralize_shape"
        missing = [self.sources[k].dataset.root for k in np.unique(self.faces.source_index(rows % n)).tolist()
                   if self.sources[k].dataset.landmarks is None]
        if missing:
            raise ConfigError(f"{missing[0]}: {setting} needs landmarks.npy (written by nfgan prepare)")
        try:
            new = self.faces.set_frontalized(rows, who=where)
        except MissingLandmarksError as e:
            raise ConfigError(str(e)) from None
        self.gen_rows[rows] = new
        self.gen_rows = np.concatenate([self.gen_rows, new])
        # turned (same-pose) targets are read frontalised, like the inputs; input rows stay real (L_id)
        target_rows = np.arange(len(self.gen_rows), dtype=np.int64)
        target_rows[front] = new[:len(front)]
        for pairs in (self.train, self.val):
            pairs.map_targets(lambda r: target_rows[r])

    # -- batches
    def read(self, rows) -> np.ndarray:
        """uint8 ``B x S x S`` faces of any rows (what a sample grid shows)."""
        return self.faces.read(rows)

    def rows(self, rows: np.ndarray) -> torch.Tensor:
        """Faces of rows as a network batch on the device."""
        return self._batch(self.faces.read(rows))

    def generator_rows(self, x_rows: np.ndarray) -> torch.Tensor:
        """What the generator reads for input rows ``x_rows`` (``B x C x S x S``, C the input rule's channels)."""
        return self._batch(self.faces.read_channels(self.gen_rows[x_rows]))

    def target_mask(self, y_rows: np.ndarray, faces: np.ndarray) -> torch.Tensor | None:
        """``B x 1 x S x S`` float mask of the target pixels (``faces``: the targets' uint8 faces) the pixel loss
        uses (0 on an empty frame), or ``None`` when every pixel counts."""
        use = self.mask_sources[self.source_of_rows(y_rows)]
        if not use.any():
            return None
        valid = np.ones((len(y_rows), self.faces.size, self.faces.size), dtype=bool)
        valid[use] = empty_border_mask(faces[use])
        if valid.all():
            return None
        return self._on_device(torch.from_numpy(valid).float().unsqueeze(1))

    def draw(self, batch_size: int, sampler: torch.Generator, part: tuple[int, int] = (0, 1)) -> Draw:
        """The rows (and augmentation settings) of the next batch: everything the sampler decides. ``part =
        (rank, world)``: the global batch of ``batch_size`` is drawn (the same on every rank) and this rank
        keeps its contiguous slice, so N ranks see exactly one process's batch."""
        x_rows, y_rows = self.train.sample(batch_size, sampler, self.input_weights)
        g_rows = self.train.sample_guides(batch_size, sampler)
        settings = []
        for section, make in (("photometric", photometric_params), ("framing_jitter", framing_params)):
            cfg = self.cfg["data"][section]
            drawn = None
            if cfg["p"] > 0:   # one draw from the sampler, only when on: runs without it keep their batches
                seed = int(torch.randint(2**31 - 1, (1,), generator=sampler))
                drawn = make(batch_size, np.random.default_rng(seed), cfg)
            settings.append(drawn)
        mix = None
        if self.mix_cfg["p"] > 0:    # drawn last, only when on: runs without it keep their batches
            seed = int(torch.randint(2**31 - 1, (1,), generator=sampler))
            mix = self._draw_mix(x_rows, y_rows, np.random.default_rng(seed))
        rank, world = part
        lo, hi = rank * batch_size // world, (rank + 1) * batch_size // world
        if world > 1:
            x_rows, y_rows, g_rows = x_rows[lo:hi], y_rows[lo:hi], g_rows[lo:hi]
        params, framing, mix = (None if drawn is None else {k: v[lo:hi] for k, v in drawn.items()}
                                for drawn in settings + [mix])
        return Draw(x_rows, y_rows, g_rows, params, framing, mix)

    def load(self, d: Draw) -> Batch:
        """Read (and augment) the faces of drawn rows: no randomness left, so it may run ahead in a thread."""
        y_faces = self.faces.read(d.y_rows)
        y_mask = self.target_mask(d.y_rows, y_faces)
        m = d.mix["mixed"] if d.mix is not None and d.mix["mixed"].any() else None
        x_real = None
        if m is not None:
            y_faces, y_mask = self._mix_targets(d, m, y_faces, y_mask)
        y = self._batch(y_faces)
        if d.photometric is None and d.framing is None and m is None:
            x = self.generator_rows(d.x_rows)
        else:
            faces = self.faces.read_channels(self.gen_rows[d.x_rows])
            channels = faces[:, None] if faces.ndim == 3 else faces      # a view: the changes land in faces
            if m is not None:
                x_real, channels[m] = self._mix_inputs(d, m)
                x_real = self._batch(x_real)
            for c in range(channels.shape[1]):   # each channel gets the same camera change and framing
                if d.photometric is not None:
                    channels[:, c] = photometric_augment(channels[:, c], d.photometric)
                if d.framing is not None:
                    channels[:, c] = framing_augment(channels[:, c], d.framing)
            x = self._batch(faces)
        return Batch(d.x_rows, d.y_rows, d.g_rows, x, y, self.rows(d.g_rows), y_mask, m, x_real)

    def _mix_inputs(self, d: Draw, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The mixed rows' real inputs (uint8 ``M x S x S``: the two stored photos morphed, mirrored where the rows
        are mirror rows) and what the generator reads for them (``M x C x S x S``: the same, warped by the input
        rule where it warps the row, with the morph's landmarks)."""
        f, n = self.faces, self.faces.n
        rows, partners, alpha = d.x_rows[m], d.mix["x"][m], d.mix["alpha"][m]
        lm_a, lm_b = f.landmarks(rows % n), f.landmarks(partners % n)
        real = morph(f.faces(rows % n), f.faces(partners % n), lm_a, lm_b, alpha)
        flip = rows >= n
        real[flip] = real[flip][..., ::-1]
        gen = np.stack([real] * self.rule.channels, axis=1)
        warped = self.gen_rows[rows] != rows
        if warped.any():
            w = alpha[warped][:, None, None]
            out = self.rule.reshape(real[warped], list(f.poses[rows[warped] % n]),
                                    (1 - w) * lm_a[warped] + w * lm_b[warped], mirrored=flip[warped],
                                    who="identity mixing", strict=True)
            gen[warped] = out if out.ndim == 4 else out[:, None]
        return real, gen

    def _mix_targets(self, d: Draw, m: np.ndarray, y_faces: np.ndarray, y_mask: torch.Tensor | None):
        """The batch's targets with mixed rows morphed with their partners' targets, and the pixel-loss mask with
        a mixed row's pixels valid only where both targets hold image content."""
        partner = self.faces.read(d.mix["y"][m])
        use = self.mask_sources[self.source_of_rows(d.y_rows[m])]
        y_faces = y_faces.copy()
        args = (y_faces[m], partner, self.faces.landmarks(d.y_rows[m]), self.faces.landmarks(d.mix["y"][m]),
                d.mix["alpha"][m])
        mixed_valid = None
        if use.any():
            size = self.faces.size
            valid_a = np.ones((int(m.sum()), size, size), dtype=bool)
            valid_b = valid_a.copy()
            valid_a[use] = empty_border_mask(y_faces[m][use])
            valid_b[use] = empty_border_mask(partner[use])
            y_faces[m], mixed_valid = morph(*args, valid_a, valid_b)
        else:
            y_faces[m] = morph(*args)
        if mixed_valid is not None and (y_mask is not None or not mixed_valid.all()):
            mask = y_mask if y_mask is not None else self._on_device(torch.ones(len(y_faces), 1, *y_faces.shape[1:]))
            mask = mask.clone()
            mask[torch.from_numpy(m).to(mask.device)] = self._on_device(torch.from_numpy(mixed_valid).float()[:, None])
            y_mask = mask
        return y_faces, y_mask

    def sample(self, batch_size: int, sampler: torch.Generator, part: tuple[int, int] = (0, 1)) -> Batch:
        """The next batch: :meth:`draw` then :meth:`load`."""
        return self.load(self.draw(batch_size, sampler, part))

    def _batch(self, faces_u8: np.ndarray) -> torch.Tensor:
        return self._on_device(to_unit_batch(faces_u8))

    def _on_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x
