"""Splitting a batch job across processes or machines: ``--shard I/N`` of ``nfgan prepare`` and ``nfgan normalize``.

The rule (one for every command): shard ``I`` of ``N`` takes the items whose index in the command's ordered
input list is ``I`` modulo ``N`` (``items[I::N]``). ``nfgan prepare`` orders a dataset's records by source
path (``adapters.load``), ``nfgan normalize`` takes its inputs in the order it lists them (arguments as
given, folders expanded recursively and sorted; a prepared folder's manifest rows). Striding instead of
contiguous blocks keeps the shards even when the list is ordered by subject or view (each shard gets every
view), and it is the same rule whatever ``N`` is.

Without ``--shard``, a process started by ``torchrun`` (environment ``RANK`` and ``WORLD_SIZE``, with
``WORLD_SIZE`` > 1) is shard ``RANK`` of ``WORLD_SIZE``; ``shard_from_args`` says which source it used. Such a
process exits 0 when only some of its inputs failed (torchrun takes any other status for a crash and stops
the other processes); the failures are in its report as always.

This module imports nothing else of nfgan, so inference code can use it (``nfgan normalize``).
"""
from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from typing import Mapping, Sequence, TypeVar

T = TypeVar("T")

SHARD_HELP = ("process only shard I of N (I = 0..N-1): the inputs whose index in the ordered input list is I "
              "modulo N. Default under torchrun: RANK/WORLD_SIZE from the environment (when WORLD_SIZE > 1)")


#: ``shard_from_args``'s source for a shard taken from torchrun's environment
TORCHRUN = "RANK/WORLD_SIZE (torchrun)"


class ShardError(ValueError):
    """A shard specification that cannot be used (bad text, or bad RANK / WORLD_SIZE)."""


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __post_init__(self):
        if not (isinstance(self.count, int) and isinstance(self.index, int) and self.count >= 1
                and 0 <= self.index < self.count):
            raise ShardError(f"a shard is I/N with N >= 1 and 0 <= I < N, got {self.index}/{self.count}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def tag(self) -> str:
        """File-name-safe form, e.g. ``shard0of2``."""
        return f"shard{self.index}of{self.count}"

    def positions(self, total: int) -> range:
        """Indices of ``total`` ordered items that belong to this shard."""
        return range(self.index, total, self.count)

    def select(self, items: Sequence[T]) -> list[T]:
        return list(items[self.index::self.count])

    def owns(self, position: int) -> bool:
        return position % self.count == self.index


_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


def parse_shard(text: str) -> Shard:
    """``"I/N"`` -> :class:`Shard`; raises :class:`ShardError` with the reason."""
    m = _SPEC.fullmatch(str(text))
    if not m:
        raise ShardError(f"--shard expects I/N (e.g. 0/2), got {text!r}")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1 or index >= count:
        raise ShardError(f"--shard {text}: need N >= 1 and 0 <= I < N")
    return Shard(index, count)


def shard_arg(text: str) -> Shard:
    """argparse ``type=`` for ``--shard``."""
    try:
        return parse_shard(text)
    except ShardError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def shard_from_env(environ: Mapping[str, str] | None = None) -> Shard | None:
    """The shard of a ``torchrun`` process: ``RANK``/``WORLD_SIZE`` when both are set and WORLD_SIZE > 1."""
    env = os.environ if environ is None else environ
    rank, world = env.get("RANK"), env.get("WORLD_SIZE")
    if rank is None or world is None:
        return None
    try:
        rank_i, world_i = int(rank), int(world)
    except ValueError:
        raise ShardError(f"RANK={rank!r} and WORLD_SIZE={world!r} must be whole numbers") from None
    if world_i <= 1:
        return None
    if not 0 <= rank_i < world_i:
        raise ShardError(f"RANK={rank_i} is outside 0..WORLD_SIZE-1 (WORLD_SIZE={world_i})")
    return Shard(rank_i, world_i)


def shard_from_args(value: Shard | None, environ: Mapping[str, str] | None = None) -> tuple[Shard | None, str]:
    """The shard to use and where it came from (``"--shard"``, ``"RANK/WORLD_SIZE"`` or ``""`` for none)."""
    if value is not None:
        return value, "--shard"
    env_shard = shard_from_env(environ)
    return (env_shard, TORCHRUN) if env_shard is not None else (None, "")
