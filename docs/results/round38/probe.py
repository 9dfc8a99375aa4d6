"""Round 38's probe (docs/experiments.md; kept here to rerun its numbers, not part of the package): every face
normalised as usual (the file's input rule and inference step), then its output normalised once more as a frontal
input (no rule, no step: the output is already in the template's framing). Then nfgan evaluate with the arguments
given."""
import sys

from nfgan.inference.generator import Generator

once = Generator.normalize


def twice(self, images_u8, poses=None, flipped=None, **kw):
    out = once(self, images_u8, poses, flipped, **kw)
    kw.pop("landmarks", None)
    return once(self, out, None, None, **kw)


Generator.normalize = twice
from nfgan.cli import main  # noqa: E402
sys.exit(main(["evaluate", *sys.argv[1:]]))
