"""The training configuration: sections every model shares (``data``, ``train``, ``log``) plus the chosen model's
own (``model``, ``feature_nets``, ``loss`` with each loss's weight, ``optim``; ``nfgan.models``), read by the one
config loader (``nfgan.config``: defaults <- ``base:`` <- file <- ``--set``)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from nfgan.config import ConfigError, load_stack, layers, nonneg, opt, peek, positive
from nfgan.data.generator_input import input_channels
from nfgan.data.neutral_shape import MODES as NEUTRALIZE_MODES
from nfgan.models import model_class

POSE_CHOICES = ("frontal", "left_3quarter", "right_3quarter", "left_profile", "right_profile", "other")


def _name_check(value: str) -> str | None:
    if not value or value in (".", "..") or "/" in value or "\\" in value or "\0" in value:
        return "must be one path component (no '/', not '.' or '..')"
    return None


#: one entry of ``data.sources``: a prepared folder, its subject split and its share of each batch
SOURCE = {
    "root": opt(None, "path"),                           # a folder written by `nfgan prepare` (required)
    "splits": opt(None, "path_or_name", nullable=True),  # a split file or shipped name; null = ROOT/splits.json
    # the source's share of every batch (weights are normalised over the sources); null = its number of
    # training pairs (every pair equally likely, as if the folders were one)
    "weight": opt(None, "float", nullable=True, low=0),
    # exclude the pixels a pre-cropped source left empty (black frame around a small crop) from the pixel loss:
    # "auto" detects the frame per face, "off" uses every pixel
    "empty_border": opt("off", choices=("auto", "off")),
}

COMMON = {
    "name": opt("nfgan", check=_name_check),
    "seed": opt(0, low=0, high=2**63 - 1),
    "data": {
        "root": opt("out/london64", "path", nullable=True),       # a folder written by `nfgan prepare`
        "splits": opt("london", "path_or_name", nullable=True),   # a split file, or the name of a shipped one
        # several prepared folders in one run, by name: {london: {root: ..., splits: london, weight: 1}, ...};
        # when given, data.root and data.splits are not used (see docs/training.md, "Several datasets")
        "sources": opt({}, "table", item=SOURCE),
        "input_poses": opt(None, "list[str]", nullable=True),        # null = all prepared poses
        "input_expressions": opt(None, "list[str]", nullable=True),  # null = all expressions
        "target_pose": opt("frontal", choices=POSE_CHOICES),
        "target_expression": "neutral",
        # Sec. 4.2: mirror left-turned inputs (unless `prepare` did) so the occluded side is on the image's right
        "flip_left_poses": True,
        # feed turned inputs to the generator landmark-frontalised (nfgan.data.frontalize; L_id still compares
        # with the real input)
        "frontalize_inputs": False,
        # what fills the far half of a frontalised turned input: the mirror image of the near half, the warp
        # itself (nfgan.data.frontalize, step 2), or both as two channels (needs model.in_channels: 2)
        "frontalize_fill": opt("mirror", choices=("mirror", "none", "both")),
        # where a turned input is warped: the mean frontal layout (template) or a prediction of the person's own
        # frontal landmarks (own: nfgan.data.frontal_shape, the map in frontal_shape_map or the shipped one)
        "frontalize_shape": opt("template", choices=("template", "own")),
        "frontal_shape_map": opt(None, "path", nullable=True),
        # warp every other (frontal) input so that its landmarks sit where the same person's neutral face would
        # have them (nfgan.data.neutral_shape: a learned map; L_id still compares with the real input)
        "neutralize_shape": False,
        # the map it uses (a file tools/fit_neutral_shape.py wrote); null = the one nfgan ships
        "neutral_shape_map": opt(None, "path", nullable=True),
        # warp: onto the predicted neutral landmarks; frame: only re-frame the crop (a similarity) as the predicted
        # neutral face would be framed by alignment (nfgan.data.neutral_shape.reframe); warp_frame: both
        "neutralize_mode": opt("warp", choices=NEUTRALIZE_MODES),
        # > 0: step 3 only for faces whose re-framing would move the template's points by more than this share of
        # the crop side on average, by the share 1 - threshold / shift (nfgan.data.neutral_shape.strength)
        "neutralize_threshold": opt(0.0, low=0, high=0.5),
        # "same_pose": a turned input's target is the subject's neutral face in the same pose, frontalised
        "turned_targets": opt("frontal", choices=("frontal", "same_pose")),
        # also train on the mirror image of every frontal (input, target) pair
        "mirror_pairs": False,
        # random photometric changes of the generator's inputs (nfgan.data.photometric): each step applied to a
        # face with probability p (0 = off); targets and L_id's reference (the real input) stay unchanged
        "photometric": {"p": opt(0.0, low=0, high=1), "contrast": opt([0.6, 1.5], "list[float]", length=2, low=0),
                        "brightness": opt(25.0, low=0, high=255), "gamma": opt([0.7, 1.4], "list[float]", length=2,
                                                                               low=0.05, high=20),
                        "blur_sigma": opt(1.2, low=0, high=10), "noise_std": opt(6.0, low=0, high=128),
                        "jpeg_quality": opt([25, 95], "list[float]", length=2, low=1, high=100)},
        # random framing of the generator's inputs (nfgan.data.framing_jitter): with probability p a face is scaled
        # (log-uniform in `scale`), turned (up to rotate_deg either way) and moved (up to `shift` of the crop side)
        # about the crop centre, as another aligner or expression would frame it; targets and L_id's reference stay
        "framing_jitter": {"p": opt(0.0, low=0, high=1),
                           "scale": opt([0.9, 1.1], "list[float]", length=2, low=0.5, high=2),
                           "rotate_deg": opt(4.0, low=0, high=45), "shift": opt(0.03, low=0, high=0.25)},
        # identity mixing (nfgan.data.identity_mix): with probability p a training pair is morphed with
        # another pair of the same source (inputs with inputs, targets with targets) into a pair of a person nobody
        # photographed; alpha: the range of the partner's weight; turned: also mix inputs the input rule warps
        # (two photos of one pose morphed, then frontalised), else only frontal inputs read as stored
        "identity_mix": {"p": opt(0.0, low=0, high=1), "alpha": opt([0.25, 0.75], "list[float]", length=2,
                                                                     low=0, high=1), "turned": False},
    },
    "train": {
        "steps": opt(5000, low=1, high=10**9),
        "batch_size": opt(64, low=1, high=65536),
        "device": "cpu",
        "bf16": False,            # bf16 autocast (CPU with AVX512-BF16 / AMX, or CUDA)
        "channels_last": True,
        "threads": opt(2, low=1, high=1024),   # torch CPU threads
        "feature_batch": opt(64, low=1, high=65536),  # chunk size when filling the frozen-feature caches
        "share_trunk": True,      # one pass on x~ when both aux nets are stages of one network (SharedTrunk)
        "prefetch": True,         # read the next batch's faces in a background thread (same batches)
        # a moving average of the generator's weights, updated after every step, saved in every checkpoint and
        # used by inference and export (nfgan.training.ema); its half-life in steps, 0 = off
        "ema_half_life": nonneg(0.0, high=1e9),
        # the learning rate schedule of pix2pix's reference "linear" policy: every optimizer keeps its optim.*.lr up
        # to this step, then falls linearly towards 0 at train.steps (nfgan.training.loop.lr_factor); null = constant
        "lr_decay_from": opt(None, "int", nullable=True, low=0, high=10**9),
    },
    "log": {"every": opt(1, low=1), "sample_every": opt(250, low=1), "checkpoint_every": opt(250, low=1),
            "keep_checkpoints": opt(3, low=1), "sample_count": opt(8, low=1, high=1024)},
}


def schema(model_type: str = "nfgan") -> dict:
    return {**COMMON, **model_class(model_type).schema()}


def load_config(path: str | Path | None = None, overrides: dict | None = None,
                sets: Sequence[str] | None = None) -> dict:
    """A checked training config: schema defaults of the model named by ``model.type`` <- ``base:`` files <-
    ``path`` <- ``overrides`` <- ``sets`` (``["train.steps=20"]``). Errors name the file and the key."""
    stack = layers(path, overrides, sets)
    model_type = peek(stack, "model.type", "nfgan")
    try:
        cls = model_class(model_type)
    except ValueError as e:
        raise ConfigError(f"{path or 'config'}: {e}") from None
    cfg = load_stack(schema(model_type), stack)
    source = str(path or "config")
    d = cfg["data"]
    if d["sources"]:
        if peek(stack, "data.root") is not None or peek(stack, "data.splits") is not None:
            raise ConfigError(f"{source}: give either data.root + data.splits (one dataset) or data.sources "
                              "(several), not both (a config based on a one-dataset config sets root: null and "
                              "splits: null)")
        d["root"] = d["splits"] = None
        for name, src in d["sources"].items():
            if not src["root"]:
                raise ConfigError(f"{source}: data.sources.{name}.root: the prepared folder is required")
        if not any(src["weight"] is None or src["weight"] > 0 for src in d["sources"].values()):
            raise ConfigError(f"{source}: data.sources: every weight is 0 - nothing to train on")
    elif not d["root"] or not d["splits"]:
        raise ConfigError(f"{source}: data.root and data.splits name the prepared folder and its split "
                          "(or give data.sources)")
    if d["mirror_pairs"] and d["target_pose"] != "frontal":
        raise ConfigError(f"{source}: data.mirror_pairs mirrors frontal inputs together with their targets, so it "
                          f"needs data.target_pose: frontal (got {d['target_pose']!r}: a mirrored target would show "
                          f"the other side)")
    if d["turned_targets"] == "same_pose" and not d["frontalize_inputs"]:
        raise ConfigError(f"{source}: data.turned_targets: same_pose needs data.frontalize_inputs: true (the "
                          "model's outputs must be frontal faces)")
    if d["frontalize_fill"] == "both" and not d["frontalize_inputs"]:
        raise ConfigError(f"{source}: data.frontalize_fill: both does nothing without data.frontalize_inputs: true")
    if (d["frontalize_shape"] != "template" or d["frontal_shape_map"]) and not d["frontalize_inputs"]:
        raise ConfigError(f"{source}: data.frontalize_shape / data.frontal_shape_map do nothing without "
                          "data.frontalize_inputs: true")
    if d["frontal_shape_map"] and d["frontalize_shape"] != "own":
        raise ConfigError(f"{source}: data.frontal_shape_map is used only with data.frontalize_shape: own")
    channels = input_channels(d["frontalize_inputs"], d["frontalize_fill"])
    if channels != cfg["model"].get("in_channels", 1):
        raise ConfigError(f"{source}: the generator reads {channels} channel(s) (data.frontalize_fill: "
                          f"{d['frontalize_fill']}) but model.in_channels is {cfg['model'].get('in_channels', 1)}"
                          + ("" if "in_channels" in cfg["model"] else f" (a {cfg['model']['type']} generator reads "
                                                                      "one channel)"))
    for key, off in (("neutralize_mode", "warp"), ("neutralize_threshold", 0.0)):   # step 3's own settings
        if d[key] != off and not d["neutralize_shape"]:
            raise ConfigError(f"{source}: data.{key} = {d[key]} does nothing without data.neutralize_shape: true")
    lo, hi = d["framing_jitter"]["scale"]
    if lo > hi:
        raise ConfigError(f"{source}: data.framing_jitter.scale = [{lo}, {hi}]: the first value is the smallest "
                          "scale, the second the largest")
    lo, hi = d["identity_mix"]["alpha"]
    if lo > hi:
        raise ConfigError(f"{source}: data.identity_mix.alpha = [{lo}, {hi}]: the first value is the smallest "
                          "weight, the second the largest")
    if d["identity_mix"]["p"] > 0 and cfg["loss"].get("id_rank", 0) > 0:
        raise ConfigError(f"{source}: data.identity_mix does not go with loss.id_rank: a mixed face is no one "
                          "training person, so the ranking term has no right answer for it")
    t = cfg["train"]
    if t["lr_decay_from"] is not None and t["lr_decay_from"] >= t["steps"]:
        raise ConfigError(f"{source}: train.lr_decay_from ({t['lr_decay_from']}) must be below train.steps "
                          f"({t['steps']}): the learning rates fall from that step to 0 at the last one")
    if hasattr(cls, "check"):
        cls.check(cfg, source)
    return cfg


__all__ = ["ConfigError", "load_config", "schema", "nonneg", "positive"]
