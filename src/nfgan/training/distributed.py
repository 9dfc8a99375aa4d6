"""Data-parallel training over several processes (one per GPU, or several on a CPU), started by torchrun.

    torchrun --nproc_per_node 4 -m nfgan train --config configs/pix2pix_lid_frontalized.yaml
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --master_port 29500 --nproc_per_node 8 \\
        -m nfgan train --config ...            # the same on the second machine with --node_rank 1

How a step is split, so that N processes compute what one process computes with the same ``batch_size``:

* **Data.** Every process holds the same batch sampler (same seed, same state) and draws the whole global batch;
  process r keeps its contiguous slice (``TrainingData.sample(part=(rank, world))``). The data order is
  therefore the single-process order, and resuming restores it exactly.
* **Gradients.** Each process backpropagates its slice's losses (means over its slice); before the optimizers
  step, every gradient is averaged over the processes (:meth:`Distributed.average_gradients`, one all-reduce per
  bucket of parameters), which gives the gradient of the global batch's mean loss. Every process then takes
  the same Adam step, so the weights stay identical everywhere without being broadcast.
  The models route gradients through several backward passes per step (Algorithm 1), which
  ``DistributedDataParallel``'s per-backward reducer does not fit; averaging once before the step is the same
  arithmetic.
* **BatchNorm.** In training mode each BatchNorm layer normalises with the statistics of the *global* batch
  (:class:`GlobalBatchNorm`: the per-channel sums are all-reduced with autograd, so the backward pass is exact
  too), because per-slice statistics would make N processes train a different model than one. torch's
  ``SyncBatchNorm`` does the same on GPUs only; this one runs on gloo (CPU) and NCCL alike.
* **Randomness.** Weights are initialised from the run's seed in every process (identical); afterwards each
  process re-seeds torch's generator with its rank (dropout masks differ between slices, as they would within
  one batch), and checkpoints store every process's generator state for an exact resume.
* **Side effects.** Process 0 alone writes the run folder (config, metrics, TensorBoard, sample grids,
  checkpoints); the others wait at a barrier. Logged losses are the mean over the processes (= the global
  batch's loss). On several machines the run folder must be on a file system every machine sees.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class Distributed:
    """This process's place in a data-parallel run (``world == 1``: a plain single-process run)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str | torch.device = "cpu") -> "Distributed":
        """Join the process group torchrun describes in the environment (``RANK``, ``WORLD_SIZE``,
        ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``); a single process when ``WORLD_SIZE`` is unset or 1."""
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if world <= 1:
            return cls()
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            cuda = torch.device(device).type == "cuda"
            if cuda:
                torch.cuda.set_device(local)
            dist.init_process_group("nccl" if cuda else "gloo")
        return cls(rank, world, local)

    def device(self, device: torch.device) -> torch.device:
        """One GPU per process on a machine: ``cuda`` becomes ``cuda:LOCAL_RANK``."""
        if self.active and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    # -- collectives (no-ops in a single process)
    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def broadcast(self, obj):
        """Process 0's ``obj`` in every process."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list:
        """Every process's ``obj``, in rank order (in every process)."""
        if not self.active:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean over the processes of a tensor (same shape everywhere)."""
        if not self.active:
            return values
        v = values.detach().clone()
        dist.all_reduce(v)
        return v / self.world

    def average_gradients(self, params, bucket_bytes: int = 16 << 20) -> None:
        """Replace every gradient by its mean over the processes (flattened into buckets, one all-reduce
        each). A parameter without a gradient in one process must have none in all (the models route the same
        losses everywhere)."""
        if not self.active:
            return
        grads = [p.grad for p in params if p.grad is not None]
        bucket: list[torch.Tensor] = []
        size = 0
        for g in grads + [None]:
            if g is not None:
                bucket.append(g)
                size += g.numel() * g.element_size()
            if bucket and (g is None or size >= bucket_bytes):
                flat = torch.cat([b.reshape(-1) for b in bucket])
                dist.all_reduce(flat)
                flat /= self.world
                offset = 0
                for b in bucket:
                    b.copy_(flat[offset:offset + b.numel()].view_as(b))
                    offset += b.numel()
                bucket, size = [], 0


class _SumOverProcesses(torch.autograd.Function):
    """All-reduce (sum) with its exact backward: each process's input reaches every process's output, so the
    gradient flowing back is the sum of every process's output gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        g = grad.clone()
        dist.all_reduce(g)
        return g


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training-mode statistics are those of the batch over every process (module docstring).
    Same parameters, buffers and state-dict keys as the BatchNorm it replaces; eval mode is unchanged."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        c = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        shape = [1, c] + [1] * (x.dim() - 2)
        xf = x.float()
        # two passes (mean, then squared deviations), as a single process's BatchNorm computes them: the
        # one-pass E[x^2] - E[x]^2 loses most digits of the variance when the mean is large
        count = torch.tensor([x.numel() // c], dtype=torch.float32, device=x.device)
        first = _SumOverProcesses.apply(torch.cat([xf.sum(dims), count]))
        n = first[-1]
        mean = first[:c] / n
        dev = xf - mean.view(shape)
        var = _SumOverProcesses.apply((dev * dev).sum(dims)) / n
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1)), alpha=m)
        y = dev * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def use_global_batchnorm(net: nn.Module) -> nn.Module:
    """Swap every BatchNorm1d/2d of ``net`` for a :class:`GlobalBatchNorm` that holds the very same parameter
    and buffer tensors (in place; optimizers built before keep working)."""
    for name, child in list(net.named_children()):
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)) and not isinstance(child, GlobalBatchNorm):
            g = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                child.track_running_stats)
            for k in ("weight", "bias"):
                setattr(g, k, getattr(child, k))
            for k in ("running_mean", "running_var", "num_batches_tracked"):
                setattr(g, k, getattr(child, k))
            g.train(child.training)
            setattr(net, name, g)
        else:
            use_global_batchnorm(child)
    return net
