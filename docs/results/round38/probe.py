"""Round 38's probe (docs/experiments.md; kept here to rerun its numbers, not part of the package): every face
normalised as usual (the file's input rule and inference step), then its output normalised once more as a frontal
input (no rule, no step: the output is already in the template's framing). Then nfgan evaluate with the arguments
given. With ``--mouth`` as the first argument (candidate `twopass_mouth`), the second pass is kept only inside
the expression regions the skip mask shuts (mouth and brows, ``nfgan.models.unet.expression_region_mask``, soft
edges) and the first pass everywhere else."""
import sys

import numpy as np

from nfgan.inference.generator import Generator
from nfgan.models.unet import expression_region_mask

once = Generator.normalize


MOUTH = sys.argv[1:2] == ["--mouth"]


def twice(self, images_u8, poses=None, flipped=None, **kw):
    out = once(self, images_u8, poses, flipped, **kw)
    kw.pop("landmarks", None)
    again = once(self, out, None, None, **kw)
    if not MOUTH:
        return again
    m = expression_region_mask(out.shape[-1]).numpy()
    return np.clip(np.rint(m * again + (1.0 - m) * out), 0, 255).astype(np.uint8)


Generator.normalize = twice
from nfgan.cli import main  # noqa: E402
sys.exit(main(["evaluate", *sys.argv[1 + MOUTH:]]))
