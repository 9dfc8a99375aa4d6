"""The training loop, the same for every generator model, and ``nfgan train``.

``Trainer`` holds one run: the data (``nfgan.training.data``), the model chosen by ``model.type``
(``nfgan.models``: its networks, losses, optimizers) and the batch sampler. ``train_step`` samples a batch,
asks the model for its losses, refuses non-finite ones, zeroes the gradients, lets the model route them
(``backward``) and steps every optimizer. ``train`` runs it into a run folder (``nfgan.rundir``): config,
JSONL losses, TensorBoard scalars and sample grids, checkpoints (``nfgan.checkpoint``), exact resume.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import yaml

from nfgan.atomic import save_image, write_text
from nfgan.checkpoint import CheckpointError, averaged_nets, load_checkpoint, save_checkpoint, with_fixed_buffers
from nfgan.config import ConfigError
from nfgan.device import DEVICE_HELP, resolve_device
from nfgan.models import model_class
from nfgan.pixels import to_uint8
from nfgan.rundir import RunDir
from nfgan.training.config import load_config
from nfgan.training.data import TrainingData
from nfgan.training.distributed import Distributed, use_global_batchnorm
from nfgan.training.ema import WeightAverage


class NonFiniteLossError(RuntimeError):
    pass


def lr_factor(step: int, decay_from: int | None, total: int) -> float:
    """What the learning rates are multiplied by for the step that follows ``step`` steps done (``train.lr_decay_from``):
    1 up to ``decay_from``, then falling linearly, ``1 / (total - decay_from)`` for the last step of ``total``.
    A function of the step alone, so a resumed run continues the schedule where it stopped."""
    if decay_from is None or step < decay_from:
        return 1.0
    return max(0.0, 1.0 - (step - decay_from) / (total - decay_from))


def grid(columns: list[np.ndarray], pad: int = 2) -> np.ndarray:
    """Columns (e.g. input | output | target), each a uint8 ``B x S x S`` stack, as one gray image."""
    b, s = columns[0].shape[0], columns[0].shape[1]
    out = np.full((b * (s + pad) + pad, len(columns) * (s + pad) + pad), 255, dtype=np.uint8)
    for c, stack in enumerate(columns):
        for r in range(b):
            out[pad + r * (s + pad): pad + r * (s + pad) + s, pad + c * (s + pad): pad + c * (s + pad) + s] = stack[r]
    return out


class Trainer:
    """One run's data, model and sampler; ``train_step`` is Algorithm 1's loop body for any model.
    ``feature_nets`` (Python only) replace the auxiliary nets the config names (``FeatureLosses``).
    ``dist``: this process's place in a data-parallel run (``nfgan.training.distributed``; default: alone)."""

    def __init__(self, config: dict, device: str | None = None, feature_nets: dict | None = None,
                 dist: Distributed | None = None):
        self.cfg = config
        self.dist = dist or Distributed()
        tcfg = config["train"]
        self.device = self.dist.device(resolve_device(device or tcfg["device"]))
        if self.device.type == "cpu" and tcfg["threads"]:
            torch.set_num_threads(int(tcfg["threads"]))
        if int(tcfg["batch_size"]) % self.dist.world:
            raise ConfigError(f"train.batch_size {tcfg['batch_size']} must be a multiple of the number of "
                              f"processes ({self.dist.world}): each takes an equal slice of the batch")
        torch.manual_seed(int(config["seed"]))
        self.sampler = torch.Generator().manual_seed(int(config["seed"]))
        self.data = TrainingData(config, self.device)
        self.model = model_class(config["model"]["type"])(config, self.device, self.data, feature_nets)
        if self.dist.active:
            for net in self.model.nets.values():
                use_global_batchnorm(net)
            if self.dist.rank:   # dropout masks differ between the slices of a batch, as within one batch
                torch.manual_seed(self._rank_seed(self.dist.rank))
        half_life = float(tcfg["ema_half_life"])
        self.ema = WeightAverage({n: self.model.nets[n] for n in self.model.GENERATOR}, half_life) \
            if half_life > 0 else None
        # the configured rates, which train.lr_decay_from scales (a resumed optimizer's state holds the last rates)
        self._base_lr = {n: [g["lr"] for g in o.param_groups] for n, o in self.model.optimizers.items()}
        self.step = 0
        self._ahead = None       # (sampler state before it, future Batch): the batch drawn ahead (prefetch)
        self._loader = None

    def _rank_seed(self, rank: int) -> int:
        return (int(self.cfg["seed"]) * 1_000_003 + rank) % (2 ** 63)

    def sample_batch(self):
        """The next training batch (``nfgan.models.base.Batch``) from the run's sampler. With
        ``train.prefetch`` the following batch's rows are drawn at once and its faces read in a background
        thread while this step computes (reading a large memory-mapped set from disk costs ~0.5 s per batch,
        docs/training.md); the batches are the same either way."""
        part = (self.dist.rank, self.dist.world)
        size = int(self.cfg["train"]["batch_size"])
        if not self.cfg["train"]["prefetch"]:
            return self.data.sample(size, self.sampler, part)
        if self._ahead is None:
            self._ahead = self._draw_ahead(size, part)
        batch = self._ahead[1].result()
        self._ahead = self._draw_ahead(size, part)
        return batch

    def _draw_ahead(self, size: int, part: tuple[int, int]):
        """Draw the next batch now (keeping the sampler's state from before, for checkpoints) and read its faces
        in the background."""
        if self._loader is None:
            from concurrent.futures import ThreadPoolExecutor

            self._loader = ThreadPoolExecutor(1, thread_name_prefix="nfgan-batches")
        state = self.sampler.get_state()
        d = self.data.draw(size, self.sampler, part)
        return state, self._loader.submit(self.data.load, d)

    def _sampler_state(self) -> torch.Tensor:
        """The sampler's state as of the batches already used (a batch drawn ahead is drawn again on resume)."""
        return self._ahead[0] if self._ahead is not None else self.sampler.get_state()

    def train_step(self) -> dict[str, float]:
        """Sample a batch, compute the model's losses, route the gradients, step every optimizer."""
        model = self.model
        model.train_mode(True)
        losses = model.compute_losses(self.sample_batch())
        names = model.LOSSES
        values = self.dist.mean(torch.stack([losses[k].detach().float() for k in names]))
        if not torch.isfinite(values).all():
            bad = [k for k, v in zip(names, values.tolist()) if not math.isfinite(v)]
            raise NonFiniteLossError(f"loss {', '.join(bad)} is not finite at step {self.step + 1} "
                                     f"(values: {dict(zip(names, values.tolist()))})")
        for opt in model.optimizers.values():
            opt.zero_grad(set_to_none=True)
        model.backward(losses)
        if self.dist.active:
            self.dist.average_gradients([p for opt in model.optimizers.values()
                                         for group in opt.param_groups for p in group["params"]])
        decay_from = self.cfg["train"]["lr_decay_from"]
        if decay_from is not None:
            f = lr_factor(self.step, decay_from, int(self.cfg["train"]["steps"]))
            for name, opt in model.optimizers.items():
                for group, lr in zip(opt.param_groups, self._base_lr[name]):
                    group["lr"] = lr * f
        for opt in model.optimizers.values():
            opt.step()
        if self.ema is not None:
            self.ema.update()
        self.step += 1
        return dict(zip(names, values.tolist()))

    @torch.no_grad()
    def sample_grid(self) -> np.ndarray:
        """input | output | target for the fixed sample rows (networks in eval mode); with ``train.ema_half_life``
        the averaged generator's output (what the run ships) between output and target."""
        x_rows, y_rows = self.data.sample_rows
        x = self.data.generator_rows(x_rows)
        outs = [to_uint8(self.model.visuals(x))]
        if self.ema is not None:
            live = dict(self.model.nets)
            self.model.nets.update(self.ema.nets)     # the model's own generate() on the averaged networks
            try:
                outs.append(to_uint8(self.model.visuals(x)))
            finally:
                self.model.nets.clear()
                self.model.nets.update(live)
        return grid([self.data.read(self.data.gen_rows[x_rows]), *outs, self.data.read(y_rows)])

    def rng_state(self) -> dict[str, torch.Tensor]:
        """The generators' states; in a data-parallel run also every other process's (``torch_cpu_rankN``).
        Collective: every process calls it."""
        own = {"torch_cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            own["cuda"] = torch.cuda.get_rng_state(self.device)
        state = {**own, "sampler": self._sampler_state()}
        if self.dist.active:
            for rank, other in enumerate(self.dist.gather(own)):
                if rank:
                    state.update({f"{k}_rank{rank}": v for k, v in other.items()})
        return state

    def save(self, path: Path) -> Path:
        """Write a checkpoint (process 0 writes; collective in a data-parallel run)."""
        rng = self.rng_state()
        if self.dist.is_main:
            nets, extra = dict(self.model.nets), {}
            if self.ema is not None:
                nets.update(self.ema.checkpoint_nets())
                extra["ema_since"] = self.ema.since
            save_checkpoint(path, self.step, nets, self.model.optimizers, rng, self.model.info(),
                            # whose faces reached a gradient (the FER leak guard reads this)
                            extra={"config": self.cfg, "train_subjects": self.data.train_subjects,
                                   "processes": self.dist.world, **extra})
        self.dist.barrier()
        return Path(path)

    def restore(self, path: str | Path) -> None:
        ck = load_checkpoint(path, expect_nets=self.model.NETS)
        bad = [f"{n}/{k}" for n, sd in ck["nets"].items() for k, v in sd.items()
               if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise CheckpointError(f"{ck['path']}: weights {bad[:3]} hold NaN or infinite values")
        for name, net in self.model.nets.items():
            net.load_state_dict(with_fixed_buffers(net, ck["nets"][name]))
        for name, opt in self.model.optimizers.items():
            opt.load_state_dict(ck["optimizers"][name])
        rng, suffix = ck["rng"], (f"_rank{self.dist.rank}" if self.dist.rank else "")
        if f"torch_cpu{suffix}" in rng:
            torch.set_rng_state(rng[f"torch_cpu{suffix}"])
        else:   # resumed with more processes than the run had: a fresh, reproducible stream for this one
            warnings.warn(f"{ck['path']}: no generator state for process {self.dist.rank}; it starts a new one")
            torch.manual_seed(self._rank_seed(self.dist.rank) + int(ck["step"]))
        self.sampler.set_state(rng["sampler"])
        if self._ahead is not None:   # a batch drawn from the old state is not the next one any more
            self._ahead[1].result()
            self._ahead = None
        if f"cuda{suffix}" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng[f"cuda{suffix}"], self.device)
        self.step = int(ck["step"])
        if self.ema is not None:
            stored = averaged_nets(ck["nets"])
            if all(n in stored for n in self.ema.nets):
                self.ema.load(stored, int(ck["extra"].get("ema_since", 0)))
            else:   # e.g. a second stage started from a first stage's checkpoint: the average starts here
                self.ema.restart(self.step)


# ----------------------------------------------------------------------------------------------- run loop
def _prune_metrics(path: Path, last_step: int) -> None:
    """Keep the metric lines up to ``last_step`` (the checkpoint resumed from); a torn line (a kill in the middle
    of a write) or any line that is not a JSON record is dropped."""
    if not path.is_file():
        return
    keep = []
    for ln in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(ln)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("step"), int) and rec["step"] <= last_step:
            keep.append(ln)
    write_text(path, "".join(ln + "\n" for ln in keep))


def _pick_checkpoint(trainer: Trainer, run: RunDir) -> Path | None:
    """The newest checkpoint that loads; a damaged newer one is set aside with a warning. ``None`` for a run
    folder with no checkpoint yet (killed before the first one): training starts again from step 0."""
    found = run.checkpoints()
    if not found:
        warnings.warn(f"{run.root}: no checkpoint yet; training starts again from step 0")
        return None
    for path in reversed(found):
        try:
            trainer.restore(path)
            return path
        except (CheckpointError, RuntimeError, KeyError, ValueError) as e:
            bad = path.with_name(path.name + ".damaged")
            os.replace(path, bad)
            warnings.warn(f"{path}: cannot be resumed from ({str(e).splitlines()[0]}); moved to {bad.name}, "
                          "trying the previous checkpoint")
    raise CheckpointError(f"{run.root}: none of its {len(found)} checkpoint(s) can be resumed from "
                          f"(set aside as *.damaged)")


def _resume(trainer: Trainer, run: RunDir) -> None:
    """Process 0 picks the checkpoint (setting damaged ones aside); every other process restores the same one."""
    dist = trainer.dist
    picked, error = None, None
    if dist.is_main:
        try:
            picked = _pick_checkpoint(trainer, run)
        except CheckpointError as e:
            error = str(e)
    picked, error = dist.broadcast((str(picked) if picked else None, error))
    if error:
        raise CheckpointError(error)
    if picked and not dist.is_main:
        trainer.restore(picked)


def train(config: dict, run_dir: str | Path, resume: bool = False, device: str | None = None,
          progress: bool = True, feature_nets: dict | None = None, dist: Distributed | None = None) -> dict:
    """Train (or resume) into ``run_dir`` until ``config['train']['steps']``. Returns a summary dict.

    Under torchrun every process calls this with the same arguments (``dist`` defaults to the process group
    the environment describes); process 0 writes the run folder.

    Raises ``NonFiniteLossError`` after writing ``run_dir/FAILED.txt`` when a loss becomes NaN/Inf; the
    checkpoints already written are kept (they were all taken at finite-loss steps).
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("nfgan train writes TensorBoard logs and needs the tensorboard package: "
                          "pip install 'nfgan[train]'") from None
    from tqdm import tqdm

    run = RunDir(run_dir)
    resolve_device(device or config["train"]["device"])   # refused before the run folder is made
    dist = dist or Distributed.from_env(device or config["train"]["device"])
    main = dist.is_main
    if main:
        run.make()
        run.remove_stale_temp_files()
    dist.barrier()
    trainer = Trainer(config, device, feature_nets, dist)
    model = trainer.model
    if resume:
        _resume(trainer, run)
    if main:
        write_text(run.config, yaml.safe_dump(config, sort_keys=False))
        if trainer.data.missing_targets:
            write_text(run.without_target, "".join(s + "\n" for s in trainer.data.missing_targets))
        _prune_metrics(run.metrics, trainer.step)
    log = config["log"]
    total = int(config["train"]["steps"])
    writer = SummaryWriter(str(run.tensorboard_dir), purge_step=trainer.step + 1 if resume else None) \
        if main else None
    t0, done0 = time.time(), trainer.step
    last_ckpt = None
    shown = model.progress_keys()
    bar = tqdm(total=total, initial=trainer.step, desc="nfgan train", unit="step",
               disable=not (progress and main), dynamic_ncols=True)
    try:
        with (open(run.metrics, "a", encoding="utf-8") if main else open(os.devnull, "w")) as mf:
            while trainer.step < total:
                try:
                    vals = trainer.train_step()
                except NonFiniteLossError as e:
                    msg = f"{e}. Training stopped; last good checkpoint: {last_ckpt or 'none written yet'}"
                    if main:
                        write_text(run.failed, msg + "\n")
                    raise NonFiniteLossError(msg) from None
                step = trainer.step
                if main and (step % int(log["every"]) == 0 or step == total):
                    rec = {"step": step, "time": round(time.time(), 3), **{k: round(v, 7) for k, v in vals.items()}}
                    mf.write(json.dumps(rec) + "\n")
                    mf.flush()
                    for k, v in vals.items():
                        writer.add_scalar(f"loss/{k}", v, step)
                bar.set_postfix({k: f"{vals[k]:.3g}" for k in shown}, refresh=False)
                bar.update(1)
                if main and (step % int(log["sample_every"]) == 0 or step == total):
                    g = trainer.sample_grid()
                    save_image(run.sample(step), g)
                    writer.add_image("samples", g[None], step)
                if step % int(log["checkpoint_every"]) == 0 or step == total:
                    last_ckpt = trainer.save(run.checkpoint(step))
                    if main:
                        run.prune_checkpoints(int(log["keep_checkpoints"]))
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    elapsed = time.time() - t0
    return {"run_dir": str(run.root), "step": trainer.step, "seconds": elapsed, "processes": dist.world,
            "steps_per_s": (trainer.step - done0) / elapsed if elapsed > 0 else float("nan"),
            "checkpoint": str(last_ckpt) if last_ckpt else None}


# ----------------------------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="YAML config (e.g. configs/nfgan_london.yaml); model.type picks "
                                               "the model (nfgan or pix2pix)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, e.g. --set train.steps=20 --set loss.id=0.2 (repeatable)")
    p.add_argument("--device", help=DEVICE_HELP + " (same as --set train.device=...)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (same as --set train.bf16=true)")
    p.add_argument("--steps", type=int, help="total steps to reach (same as --set train.steps=N)")
    p.add_argument("--out", type=Path, default=Path("runs"), help="parent folder of new run folders (default runs/)")
    p.add_argument("--name", help="run folder name (default: <config name>-<UTC time>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _new_run_folder(args, cfg: dict) -> Path | int:
    """The folder of a new run (an exit code when it cannot be used)."""
    name = args.name or f"{cfg['name']}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    if args.name is not None and (not name or name in (".", "..") or "/" in name or "\\" in name):
        print(f"error: --name {name!r} must be one folder name (no '/', not '.' or '..')", file=sys.stderr)
        return 2
    run_dir = RunDir(args.out / name)
    if run_dir.is_run() and run_dir.checkpoints():
        print(f"error: {run_dir.root} already holds a run; use --resume {run_dir.root} or another --name",
              file=sys.stderr)
        return 2
    # a folder that holds a config but no checkpoint (stopped before the first one) starts again
    return run_dir.root


def run(args: argparse.Namespace) -> int:
    """``nfgan train``. Under torchrun every process runs it; process 0 names a new run folder."""
    dist = None
    try:
        sets = list(args.sets)
        if args.steps is not None:
            sets.append(f"train.steps={args.steps}")
        if args.bf16:
            sets.append("train.bf16=true")
        if args.device:
            sets.append(f"train.device={args.device}")
        if args.resume:
            if not RunDir(args.resume).is_run():
                print(f"error: {args.resume}: not a run folder (no config.yaml)", file=sys.stderr)
                return 2
            cfg = load_config(RunDir(args.resume).config, sets=sets)
        elif args.config is None:
            print("error: give --config CONFIG.yaml (or --resume RUN_DIR)", file=sys.stderr)
            return 2
        else:
            cfg = load_config(args.config, sets=sets)
        dist = Distributed.from_env(cfg["train"]["device"])
        if args.resume:
            run_dir: Path | int = RunDir(args.resume).root
        else:
            run_dir = dist.broadcast(_new_run_folder(args, cfg) if dist.is_main else None)
            if isinstance(run_dir, int):
                return run_dir
        summary = train(cfg, run_dir, resume=bool(args.resume), progress=not args.quiet, dist=dist)
    except (ConfigError, NonFiniteLossError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if dist is not None and dist.active:
            import torch.distributed

            if torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
    if dist.is_main:
        print(json.dumps(summary))
    return 0
