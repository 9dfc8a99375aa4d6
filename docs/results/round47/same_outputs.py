"""Rounds 47-48 (docs/experiments.md): does a re-exported model file give the outputs that were scored? Both
normalise London's test inputs; prints the shipped file's pull and licence and whether the outputs are equal
byte for byte.

    python docs/results/round47/same_outputs.py SHIPPED_NAME SCORED_FILE
"""
import sys

import numpy as np

from nfgan.data.dataset import PreparedDataset
from nfgan.data.pairs import load_splits
from nfgan.inference import load_model

ds = PreparedDataset("out/london64")
rows = ds.indices(load_splits("london")["test"])
poses = list(np.asarray(ds.column("pose"), dtype=object)[rows])
flipped = [f == "1" for f in np.asarray(ds.column("flipped"), dtype=object)[rows]]
shipped, scored = (load_model(m) for m in sys.argv[1:3])
print("shipped pull:", shipped.pull, "; licence:", shipped.info.get("license"))
a, b = (g.normalize(ds.images[rows], poses, flipped, landmarks=ds.landmarks[rows]) for g in (shipped, scored))
print(f"{len(rows)} London test inputs; the shipped file gives the scored outputs byte for byte:", np.array_equal(a, b))
