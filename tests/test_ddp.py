"""Data-parallel training (nfgan.training.distributed): 2 gloo processes on the CPU against one process.

Tolerance (the runs are not bit-identical: BatchNorm's statistics and the averaged gradients are summed in
another order): the U-Net's weights after 4 steps within 1e-4 (measured 4.6e-6) and its losses within 1e-5
relative; NFGAN's losses within 1e-4 relative and 99 % of its weights within 1e-5 after 3 steps (measured
99.6 %), the rest within Adam's bound of 2 lr per step - its Linear layer before BatchNorm1d gets gradients so
small that float rounding flips the sign of Adam's +-lr step for some weights. (With the dlib feature nets
the NFGAN gradient itself jumps by a few percent under a 1e-6 change of the input - max-pooling ties in the
frozen ResNet - so that configuration matches a single process in distribution, not to float tolerance;
docs/training.md.)
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, logged_losses, make_prepared, tiny_config, tiny_nets
from safetensors.torch import load_file

TORCHRUN = Path(sys.executable).with_name("torchrun")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _p2p_args(data: Path, out: Path, name: str, steps: int, dropout: float) -> list[str]:
    sets = {"model.type": "pix2pix", "model.ngf": 8, "model.ndf": 8, "model.dropout": dropout,
            "data.root": data, "data.splits": data / "splits.json", "data.flip_left_poses": "false",
            "train.batch_size": 8, "train.threads": 1, "train.bf16": "false", "train.channels_last": "false",
            "log.checkpoint_every": 2, "log.sample_every": 2, "log.keep_checkpoints": 10,
            # the generator's moving average rides along: checkpoints compare it too (net/ema_gen/...)
            "train.ema_half_life": 2}
    args = ["train", "--config", str(REPO / "configs" / "baseline_pix2pix.yaml"), "--steps", str(steps),
            "--quiet", "--out", str(out), "--name", name]
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    return args


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}


def _torchrun(nproc: int, args: list[str]) -> list[str]:
    return [str(TORCHRUN), "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1",
            "--master_port", str(_port()), "-m", "nfgan", *args]


def _run(cmd: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(ckpt)).items() if k.startswith("net/")}


needs_torchrun = pytest.mark.skipif(not TORCHRUN.is_file(), reason="torchrun is not installed beside python")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_prepared(tmp_path_factory.mktemp("ddp") / "data", subjects=6)


@needs_torchrun
def test_ddp_torchrun_two_processes_match_one_process(data, tmp_path):
    _run([sys.executable, "-m", "nfgan", *_p2p_args(data, tmp_path, "one", 4, 0.0)])
    r = _run(_torchrun(2, _p2p_args(data, tmp_path, "two", 4, 0.0)))
    summary = json.loads(r.stdout.strip().splitlines()[-1])          # printed once, by process 0
    assert summary["processes"] == 2 and summary["step"] == 4
    a = _weights(tmp_path / "one" / "checkpoints" / "step_00000004.safetensors")
    b = _weights(tmp_path / "two" / "checkpoints" / "step_00000004.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("net/ema_gen/") for k in a)
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a if a[k].is_floating_point())
    assert worst < 1e-4, worst
    changed = max((a[k].float() - _weights(tmp_path / "one" / "checkpoints" / "step_00000002.safetensors")[k]
                   .float()).abs().max().item() for k in a if a[k].is_floating_point())
    assert changed > 100 * worst          # the runs moved the weights far more than they disagree
    la, lb = logged_losses(tmp_path / "one"), logged_losses(tmp_path / "two")
    assert [r["step"] for r in la] == [r["step"] for r in lb] == [1, 2, 3, 4]
    for ra, rb in zip(la, lb):
        for k in ra:
            assert rb[k] == pytest.approx(ra[k], rel=1e-5, abs=1e-6), (ra["step"], k)
    # process 0 alone wrote the run folder: one metrics line per step, one set of checkpoints
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == \
        ["step_00000002.safetensors", "step_00000004.safetensors"]


def _spawned(rank: int, world: int, port: int, cfg: dict, run_dir: str) -> None:
    import torch.distributed as dist

    from nfgan.training.distributed import Distributed
    from nfgan.training.loop import train

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        train(cfg, run_dir, progress=False, feature_nets=tiny_nets(), dist=Distributed(rank, world))
    finally:
        dist.destroy_process_group()


def test_ddp_nfgan_with_cached_feature_nets_matches_one_process(data, tmp_path):
    """NFGAN (BatchNorm1d + 2d, three networks, routed backward) with both feature losses read from each
    process's own feature caches, through the Python API."""
    import torch.multiprocessing as mp

    from nfgan.training.loop import train

    cfg = tiny_config(data, steps=3, batch_size=8, threads=1)
    cfg["log"].update(checkpoint_every=3, sample_every=3)
    train(cfg, tmp_path / "one", progress=False, feature_nets=tiny_nets())
    mp.spawn(_spawned, args=(2, _port(), cfg, str(tmp_path / "two")), nprocs=2)
    a = _weights(tmp_path / "one" / "checkpoints" / "step_00000003.safetensors")
    b = _weights(tmp_path / "two" / "checkpoints" / "step_00000003.safetensors")
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a if a[k].is_floating_point())
    close, total = 0, 0
    for key in a:
        if a[key].is_floating_point():
            d = (a[key].float() - b[key].float()).abs()
            close += int((d <= 1e-5).sum())
            total += d.numel()
    # Adam moves a weight by up to lr per step whatever its gradient's size, so a weight whose gradient is ~0
    # can take a +-lr step in one run and the opposite one in the other: the bound is 2 lr per step
    assert worst <= 2 * 2e-4 * 3 + 1e-6, worst
    assert close / total > 0.99, (close, total)   # measured 99.6 % (NFGAN: the weights before BatchNorm1d get tiny gradients)
    for ra, rb in zip(logged_losses(tmp_path / "one"), logged_losses(tmp_path / "two")):
        for k in ra:
            assert rb[k] == pytest.approx(ra[k], rel=1e-4, abs=1e-6), (ra["step"], k)


def test_global_batchnorm_alone_is_plain_batchnorm():
    """In one process (or eval mode) the swapped layer is BatchNorm itself: same outputs, same state dict."""
    from nfgan.models.networks import Encoder
    from nfgan.training.distributed import GlobalBatchNorm, use_global_batchnorm

    torch.manual_seed(0)
    a = Encoder()
    b = Encoder()
    b.load_state_dict(a.state_dict())
    params = [id(p) for p in b.parameters()]
    use_global_batchnorm(b)
    assert [id(p) for p in b.parameters()] == params        # optimizers built before keep their tensors
    assert any(isinstance(m, GlobalBatchNorm) for m in b.modules())
    assert a.state_dict().keys() == b.state_dict().keys()
    x = torch.randn(6, 1, 64, 64)
    assert torch.equal(a(x), b(x))
    a.eval(), b.eval()
    assert torch.equal(a(x), b(x))


def _workers(agent_pid: int) -> list[int]:
    """The processes torchrun's agent started (its children)."""
    kids = []
    for task in Path(f"/proc/{agent_pid}/task").iterdir():
        kids += [int(p) for p in (task / "children").read_text().split()]
    return kids


@needs_torchrun
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc to find torchrun's workers")
def test_ddp_kill_one_process_and_resume_is_exact(data, tmp_path):
    """Dropout on (each process its own generator): a run whose process 1 is killed with SIGKILL after a
    checkpoint, resumed under torchrun, ends bit-identical to the same 2-process run never interrupted."""
    _run(_torchrun(2, _p2p_args(data, tmp_path, "whole", 6, 0.5)))
    proc = subprocess.Popen(_torchrun(2, _p2p_args(data, tmp_path, "killed", 6, 0.5)), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ckpt = tmp_path / "killed" / "checkpoints" / "step_00000002.safetensors"
    t0 = time.time()
    try:
        while not ckpt.is_file():
            assert proc.poll() is None, "the run ended before the kill point"
            assert time.time() - t0 < 180, "no checkpoint in time"
            time.sleep(0.02)
        workers = _workers(proc.pid)
        assert len(workers) == 2
        os.kill(workers[1], signal.SIGKILL)
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert rc != 0
    killed = tmp_path / "killed"
    assert not (killed / "checkpoints" / "step_00000006.safetensors").exists()
    _run(_torchrun(2, ["train", "--resume", str(killed), "--quiet"]))   # reads the run's own config.yaml
    a = load_file(str(tmp_path / "whole" / "checkpoints" / "step_00000006.safetensors"))
    b = load_file(str(killed / "checkpoints" / "step_00000006.safetensors"))
    assert a.keys() == b.keys() and "rng/torch_cpu_rank1" in a and "net/ema_gen/down.0.0.weight" in a
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert different == []
    assert logged_losses(tmp_path / "whole") == logged_losses(killed)


def test_batch_must_split_evenly(data):
    from nfgan.config import ConfigError
    from nfgan.training.distributed import Distributed
    from nfgan.training.loop import Trainer

    cfg = tiny_config(data, batch_size=5)
    with pytest.raises(ConfigError, match="multiple of the number of processes"):
        Trainer(cfg, feature_nets=tiny_nets(), dist=Distributed(0, 2))


def test_rank_slices_cover_the_single_process_batch(data):
    """Each process's slice of the batch is its part of what one process draws with the same sampler state."""
    from nfgan.training.data import TrainingData

    cfg = tiny_config(data, batch_size=8)
    d = TrainingData(cfg, torch.device("cpu"))
    whole = d.sample(8, torch.Generator().manual_seed(3))
    parts = [d.sample(8, torch.Generator().manual_seed(3), (r, 2)) for r in range(2)]
    for name in ("x_rows", "y_rows", "g_rows"):
        assert np.array_equal(np.concatenate([getattr(p, name) for p in parts]), getattr(whole, name))
    assert torch.equal(torch.cat([p.x for p in parts]), whole.x)
