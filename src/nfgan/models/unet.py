"""The pix2pix networks (Isola et al. 2017) at 64 px: a U-Net generator and a conditional PatchGAN discriminator.

* ``UNetGenerator``: six stride-2 4x4 convolutions (64 -> 1 px; C ngf, 2ngf, 4ngf, 8ngf, 8ngf, 8ngf with
  channels capped at ``max_channels``), LeakyReLU(0.2), BatchNorm except on the first and innermost layers; six
  stride-2 4x4 transposed convolutions back to 64 px with ReLU, BatchNorm and a skip connection (channel
  concatenation) from the mirrored encoder layer; dropout 0.5 on the three innermost decoder layers in
  training; Tanh output in [-1, 1]. ``skip_mask`` > 0 damps the skip connections at 8 px and finer inside the
  mouth and brow regions of the aligned crop (:func:`expression_region_mask`; ``skip_mask_regions`` can add the
  eyes) by that factor (1: nothing passes there), so that the decoder redraws those regions from the coarse
  code instead of copying the input's open mouth, frown or raised brows (issue #23 item 4, "less copying
  through the skip connections"); 0 (default) is the plain pix2pix U-Net. ``tone_norm`` (off by default)
  takes each face's brightness and contrast out before the U-Net and puts them back on its output
  (:func:`tone_stats`: the mean and standard deviation of the crop's central window, where every framing has
  face; with ``tone_region`` ``steady`` only of the window's pixels outside the mouth and brow regions, whose
  tone an expression changes): the network then works on one tone scale whatever the camera, and its last layer
  is linear (the output is clamped to [-1, 1] outside training) so that it can reach any gray level of the
  photo's own scale. ``tone_lock`` also sets the output's window (same region and weights) to exactly the
  normalised tone before the map back, so the output's window has the input's mean and standard deviation
  whatever tone the network would have drawn. ``skip_shut_sides`` (none by default) shuts the skips of the
  given sizes over the whole face. ``deep_codes`` gives the encoder's maps at 4 px and coarser (the
  ones no skip mask reaches), for ``loss.code``. ``skip_proj_k`` > 0 (an inference step, 0 by default) takes
  ``k`` expression directions out of the skips of ``skip_proj_sides`` (16 and 8 px): each such skip map ``s``
  (flattened) becomes ``s - Q Q^T (s - c)`` before its gate, with ``Q`` (orthonormal columns) and ``c`` buffers
  that ``nfgan.inference.expression_directions`` fits for a trained model (zero, i.e. no change, until then);
  the deeper maps are computed from the photo's maps as they were.
* ``PatchDiscriminator``: conditional, on the channel pair (input x, candidate); C ndf (no BN), 2ndf, 4ndf with
  stride 2, 8ndf with stride 1, then a 1-map stride-1 conv: a 6x6 map of patch logits for 64x64 input (each
  logit sees a 70x70 receptive field cut to the image - for 64px faces this is close to the whole face, as
  pix2pix's 70x70 patch on 256px images is not; we keep the paper's layer recipe).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: the finest skip resolutions :class:`UNetGenerator`'s ``skip_mask`` damps (coarser maps span the whole face)
MASKED_SKIP_MIN_SIZE = 8
#: the encoder maps ``deep_codes`` returns (and ``loss.code`` matches): this size and coarser, below the skip mask's
CODE_MAX_SIZE = MASKED_SKIP_MIN_SIZE // 2

#: the gray-level mean and standard deviation (in [-1, 1] units) ``tone_norm`` gives every face's central window
TONE_MEAN, TONE_STD = 0.0, 0.5
#: the smallest standard deviation ``tone_norm`` divides by (about 2.5 gray levels): a flat crop is not amplified
TONE_MIN_STD = 0.02
#: where ``tone_norm`` measures a face's tone: the whole central window, or its pixels outside the mouth and brows
TONE_REGIONS = ("window", "steady")


def tone_window(size: int) -> slice:
    """The rows (and columns) of the central window, side ``size / 2``, that :func:`tone_stats` reads."""
    return slice(size // 4, size - size // 4)


def tone_weights(size: int, region: str = "window") -> torch.Tensor:
    """The weight of each pixel of the central window (``size/2 x size/2``) in :func:`tone_stats`: all 1 for
    ``window``; for ``steady`` 1 minus :func:`expression_region_mask` (mouth and brows), so that an open mouth,
    teeth, a moustache or a frown do not change the measured tone."""
    if region not in TONE_REGIONS:
        raise ValueError(f"tone region must be one of {TONE_REGIONS}, got {region!r}")
    w = tone_window(size)
    if region == "window":
        return torch.ones(size // 2, size // 2)
    return 1.0 - expression_region_mask(size)[w, w]


def tone_stats(x: torch.Tensor, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-face gray-level mean and standard deviation (``B x 1 x 1 x 1`` each, float32) of the central half
    (side S/2) of ``B x C x S x S`` faces: inside the face in every aligned crop, away from the background and
    the empty frames of pre-cropped sets; each pixel counted with its weight (:func:`tone_weights`, all 1 if
    None); the deviation is floored at :data:`TONE_MIN_STD`."""
    w = tone_window(x.shape[-1])
    window = x[..., w, w].float()
    if weights is None:
        mean = window.mean(dim=(1, 2, 3), keepdim=True)
        std = window.std(dim=(1, 2, 3), keepdim=True, unbiased=False)
    else:
        weights = weights.to(window.dtype) / (weights.sum() * x.shape[1])
        mean = (window * weights).sum(dim=(1, 2, 3), keepdim=True)
        std = (((window - mean) ** 2) * weights).sum(dim=(1, 2, 3), keepdim=True).sqrt()
    return mean, std.clamp_min(TONE_MIN_STD)


#: the regions ``skip_mask`` can shut, each one or more ellipses around points of nfgan's 49-point template
#: (:data:`nfgan.data.align.TEMPLATE49`): (first and last + 1 point, x and y widening of the points' half extents,
#: x and y margins in 64 px crop pixels)
SKIP_MASK_REGIONS = {
    "mouth": (((31, 43), 1.2, 1.6, 1.0, 2.0),),      # the outer lip contour, out to the nasolabial folds and chin
    "brows": (((0, 10), 1.0, 1.0, 0.0, 2.5),),       # both brows, the glabella and the forehead above
    "eyes": (((19, 25), 1.2, 1.6, 1.0, 1.5),         # each eye with its lids
             ((25, 31), 1.2, 1.6, 1.0, 1.5)),
}
#: the regions of the shipped models' masks
DEFAULT_SKIP_MASK_REGIONS = ("mouth", "brows")


def skip_mask_regions_error(regions) -> str | None:
    """Why ``regions`` cannot name a skip mask (one or more of :data:`SKIP_MASK_REGIONS`, each once), or None."""
    regions = list(regions)
    if not regions or set(regions) - set(SKIP_MASK_REGIONS) or len(set(regions)) != len(regions):
        return f"expected one or more of {list(SKIP_MASK_REGIONS)}, each once, got {regions}"
    return None


def skip_shut_sides_error(sides, image_size: int = 64) -> str | None:
    """Why ``sides`` cannot name skips to shut (sizes in px of a ``image_size`` U-Net's skips, each once), or None."""
    skips = [image_size >> (i + 1) for i in range(int(round(math.log2(image_size))) - 1)]
    sides = list(sides)
    if any(float(v) not in skips for v in sides) or len(set(sides)) != len(sides):
        return f"expected skip sizes among {skips} (px), each once, got {sides}"
    return None


def skip_proj_error(k, sides, image_size: int = 64) -> str | None:
    """Why ``k`` directions cannot be taken out of the skips ``sides`` (px) of a ``image_size`` U-Net, or None."""
    error = skip_shut_sides_error(sides, image_size)
    if error:
        return error
    if int(k) < 0 or (int(k) > 0 and not list(sides)):
        return f"expected k >= 0 and, with k > 0, one or more skip sizes; got k {k}, sides {list(sides)}"
    return None


def expression_region_mask(size: int, regions=DEFAULT_SKIP_MASK_REGIONS) -> torch.Tensor:
    """``size x size`` soft mask of the regions that show an expression in a face aligned to nfgan's template
    (:data:`nfgan.data.align.TEMPLATE49`), by default (``regions`` ``mouth``, ``brows``): 1 inside an ellipse
    around the outer lip contour, widened to the nasolabial folds and the chin, and inside one around both brows
    reaching the glabella and the forehead above; falling linearly to 0 within ``3`` px (at 64 px) outside them.
    Eyes (unless ``eyes`` is in ``regions``), nose and the face's outline stay out."""
    from scipy.ndimage import distance_transform_edt

    from nfgan.data.align import template_points

    pts = template_points(size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    px = size / 64.0                                    # the margins below are in 64 px crop pixels
    error = skip_mask_regions_error(regions)
    if error:
        raise ValueError(f"skip mask regions: {error}")
    inside = np.zeros((size, size), dtype=bool)
    for (a, b), wx, wy, gx, gy in (e for r in SKIP_MASK_REGIONS if r in regions for e in SKIP_MASK_REGIONS[r]):
        group = pts[a:b]
        cx, cy = group.mean(axis=0)
        ax = 0.5 * np.ptp(group[:, 0]) * wx + gx * px
        ay = 0.5 * np.ptp(group[:, 1]) * wy + gy * px
        inside |= ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1.0
    mask = np.clip(1.0 - distance_transform_edt(~inside) / (3.0 * px), 0.0, 1.0)
    return torch.tensor(mask, dtype=torch.float32)


class UNetGenerator(nn.Module):
    """U-Net for ``B x 1 x S x S`` faces in [-1, 1] -> ``B x 1 x S x S`` in [-1, 1] (S a power of two >= 8).

    ``depth = log2(S)`` stride-2 downsamplings reach a 1x1 bottleneck (6 for 64 px)."""

    def __init__(self, image_size: int = 64, ngf: int = 32, max_channels: int = 256, dropout: float = 0.5,
                 in_channels: int = 1, out_channels: int = 1, skip_mask: float = 0.0,
                 skip_mask_regions=DEFAULT_SKIP_MASK_REGIONS, tone_norm: bool = False, tone_region: str = "window",
                 tone_lock: bool = False, skip_shut_sides=(), skip_proj_k: int = 0, skip_proj_sides=(16, 8)):
        super().__init__()
        if tone_region not in TONE_REGIONS:
            raise ValueError(f"UNetGenerator tone_region must be one of {TONE_REGIONS}, got {tone_region!r}")
        if tone_lock and not tone_norm:
            raise ValueError("UNetGenerator tone_lock needs tone_norm")
        self.tone_lock = bool(tone_lock)
        self.tone_norm = bool(tone_norm)
        self.tone_region = tone_region
        if self.tone_norm and tone_region != "window":     # not in the state dict: made again from the setting
            self.register_buffer("tone_weight", tone_weights(image_size, tone_region), persistent=False)
        depth = int(round(math.log2(image_size)))
        if 2 ** depth != image_size or depth < 3:
            raise ValueError(f"UNetGenerator needs a power-of-two image size >= 8, got {image_size}")
        if not 0.0 <= float(skip_mask) <= 1.0:
            raise ValueError(f"UNetGenerator skip_mask must be in [0, 1], got {skip_mask}")
        self.skip_mask = float(skip_mask)
        sides = [image_size >> (i + 1) for i in range(depth - 1)]   # down[i]'s output feeds a skip of this size
        error = skip_shut_sides_error(skip_shut_sides, image_size)
        if error:
            raise ValueError(f"UNetGenerator skip_shut_sides: {error}")
        shut = {int(v) for v in skip_shut_sides}
        # gates of the masked skips: in the state dict, so a model file keeps the exact mask it was trained with
        masked = []
        region = (expression_region_mask(image_size, tuple(skip_mask_regions))[None, None] if self.skip_mask > 0
                  else None)
        for i, side in enumerate(sides):
            if side in shut:                           # the whole skip shut: the decoder draws this scale from below
                self.register_buffer(f"skip_gate{i}", torch.zeros(1, 1, side, side))
                masked.append(i)
            elif region is not None and side >= MASKED_SKIP_MIN_SIZE:
                gate = 1.0 - self.skip_mask * F.adaptive_avg_pool2d(region, side)
                self.register_buffer(f"skip_gate{i}", gate)
                masked.append(i)
        self.masked_skips = tuple(masked)
        chans = [min(ngf * 2 ** min(i, 3), max_channels) for i in range(depth)]
        error = skip_proj_error(skip_proj_k, skip_proj_sides, image_size)
        if error:
            raise ValueError(f"UNetGenerator skip_proj: {error}")
        self.skip_proj_k = int(skip_proj_k)
        projected, proj_sides = [], {int(v) for v in skip_proj_sides} if self.skip_proj_k else set()
        for i, side in enumerate(sides):   # in the state dict: a model file carries its fitted directions
            if side in proj_sides:
                dim = chans[i] * side * side
                if self.skip_proj_k > dim:
                    raise ValueError(f"UNetGenerator skip_proj_k {skip_proj_k} exceeds the {dim} values of the "
                                     f"{side} px skip")
                self.register_buffer(f"skip_proj{i}_q", torch.zeros(dim, self.skip_proj_k))
                self.register_buffer(f"skip_proj{i}_c", torch.zeros(dim))
                projected.append(i)
        self.projected_skips = tuple(projected)
        self.down = nn.ModuleList()
        cin = in_channels
        for i, c in enumerate(chans):
            layers: list[nn.Module] = []
            if i > 0:
                layers.append(nn.LeakyReLU(0.2, inplace=False))
            layers.append(nn.Conv2d(cin, c, 4, stride=2, padding=1, bias=i in (0, depth - 1)))
            if 0 < i < depth - 1:
                layers.append(nn.BatchNorm2d(c))
            self.down.append(nn.Sequential(*layers))
            cin = c
        self.up = nn.ModuleList()
        for i in reversed(range(depth)):          # up[k] undoes down[i], i = depth-1 .. 0
            innermost, outermost = i == depth - 1, i == 0
            c_in = chans[i] if innermost else 2 * chans[i]
            c_out = out_channels if outermost else chans[i - 1]
            layers = [nn.ReLU(inplace=False),
                      nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=outermost)]
            if outermost:
                if not self.tone_norm:               # tone_norm: linear, the face's own tone is put back after
                    layers.append(nn.Tanh())
            else:
                layers.append(nn.BatchNorm2d(c_out))
                if dropout > 0 and i >= depth - 3:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))

    def _encode(self, x: torch.Tensor, keep_stats: bool = False):
        """The encoder's outputs, finest first, and the input's tone (mean, std) where ``tone_norm`` took it out.
        ``keep_stats``: each layer runs on copies of its buffers, so BatchNorm keeps its running statistics."""
        tone = None
        if self.tone_norm:
            tone = tone_stats(x, getattr(self, "tone_weight", None))
            x = ((x.float() - tone[0]) * (TONE_STD / tone[1]) + TONE_MEAN).to(x.dtype)
        skips = []
        h = x
        for d in self.down:
            h = (torch.func.functional_call(d, {k: v.clone() for k, v in d.named_buffers()}, (h,)) if keep_stats
                 else d(h))
            skips.append(h)
        return skips, tone

    def projected_skip(self, i: int, s: torch.Tensor) -> torch.Tensor:
        """Skip map ``s`` of encoder block ``i`` with its part along the fitted directions set to ``c``'s."""
        q, c = getattr(self, f"skip_proj{i}_q"), getattr(self, f"skip_proj{i}_c")
        flat = s.flatten(1)
        return (flat - (flat - c) @ q @ q.T).view_as(s)

    def deep_codes(self, x: torch.Tensor, max_size: int = CODE_MAX_SIZE) -> list[torch.Tensor]:
        """The encoder's maps at ``max_size`` px and coarser for ``x`` (finest first; by default the maps no skip mask
        reaches, each spanning the whole face). In training mode BatchNorm normalises by ``x``'s own batch, and its
        running statistics are left exactly as they were (this pass does not count as a training batch)."""
        skips, _ = self._encode(x, keep_stats=True)
        return [s for s in skips if s.shape[-1] <= max_size]

    def forward(self, x: torch.Tensor, code_size: int = 0):
        """The output for ``x``; with ``code_size`` > 0, also this same pass's encoder maps at ``code_size`` px and
        coarser (what :meth:`deep_codes` gives for that size)."""
        skips, tone = self._encode(x)
        h = self.up[0](skips[-1])
        for k, u in enumerate(self.up[1:], start=2):
            i = len(skips) - k
            skip = self.projected_skip(i, skips[i]) if i in self.projected_skips else skips[i]
            skip = skip * getattr(self, f"skip_gate{i}") if i in self.masked_skips else skip
            h = u(torch.cat([h, skip], dim=1))
        if self.tone_norm:
            mean, std = tone
            h = h.float()
            if self.tone_lock:                       # the output's window gets exactly the normalised tone
                out_mean, out_std = tone_stats(h, getattr(self, "tone_weight", None))
                h = (h - out_mean) * (TONE_STD / out_std) + TONE_MEAN
            h = (h - TONE_MEAN) * (std / TONE_STD) + mean
            if not self.training:
                h = h.clamp(-1.0, 1.0)
        if code_size > 0:
            return h, [s for s in skips if s.shape[-1] <= code_size]
        return h


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN: logits ``B x 1 x h x w`` for the pair (x, candidate), each ``B x 1 x S x S``."""

    def __init__(self, ndf: int = 32, n_layers: int = 3, in_channels: int = 2, max_channels: int = 512):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        c = ndf
        for i in range(1, n_layers + 1):
            c_next = min(ndf * 2 ** i, max_channels)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(c, c_next, 4, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_next),
                       nn.LeakyReLU(0.2, True)]
            c = c_next
        layers.append(nn.Conv2d(c, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, candidate], dim=1))
