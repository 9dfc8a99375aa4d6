"""The layout of a training run folder, known here only::

    RUN/config.yaml                    the resolved configuration (paths absolute)
    RUN/metrics.jsonl                  one JSON line of losses per logged step
    RUN/checkpoints/step_NNNNNNNN.safetensors   checkpoints (nfgan.checkpoint), newest kept
    RUN/samples/step_NNNNNNNN.png      sample grids (input | output | target)
    RUN/tensorboard/                   TensorBoard event files
    RUN/FAILED.txt                     why a run stopped (a loss went NaN/Inf)
    RUN/subjects_without_target.txt    subjects left out for want of a target face
"""
from __future__ import annotations

from pathlib import Path

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
SAMPLES = "samples"
TENSORBOARD = "tensorboard"
FAILED = "FAILED.txt"
WITHOUT_TARGET = "subjects_without_target.txt"


class RunDirError(ValueError):
    pass


def step_name(step: int, suffix: str) -> str:
    return f"step_{int(step):08d}{suffix}"


class RunDir:
    """Paths inside one run folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    config = property(lambda self: self.root / CONFIG)
    metrics = property(lambda self: self.root / METRICS)
    checkpoints_dir = property(lambda self: self.root / CHECKPOINTS)
    samples_dir = property(lambda self: self.root / SAMPLES)
    tensorboard_dir = property(lambda self: self.root / TENSORBOARD)
    failed = property(lambda self: self.root / FAILED)
    without_target = property(lambda self: self.root / WITHOUT_TARGET)

    def is_run(self) -> bool:
        return self.config.is_file()

    def make(self) -> None:
        self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
        self.samples_dir.mkdir(exist_ok=True)

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints_dir / step_name(step, ".safetensors")

    def sample(self, step: int) -> Path:
        return self.samples_dir / step_name(step, ".png")

    def checkpoints(self) -> list[Path]:
        """The run's checkpoints, oldest first."""
        return sorted(self.checkpoints_dir.glob(step_name(0, ".safetensors").replace("00000000", "*")))

    def latest_checkpoint(self) -> Path:
        found = self.checkpoints()
        if not found:
            raise RunDirError(f"{self.root}: no {CHECKPOINTS}/step_*.safetensors here")
        return found[-1]

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete the temporary files of writes a kill interrupted (``nfgan.atomic.remove_temp_files``)."""
        from nfgan.atomic import remove_temp_files

        return remove_temp_files(self.root, self.checkpoints_dir, self.samples_dir)

    def prune_checkpoints(self, keep: int) -> None:
        for old in self.checkpoints()[:-keep]:
            old.unlink()


def latest_checkpoint(run_dir: str | Path) -> Path:
    """The checkpoint with the highest step in a run folder."""
    return RunDir(run_dir).latest_checkpoint()
