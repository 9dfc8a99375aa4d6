# Session 37, run from the repository root: .venv/bin/python docs/results/rank1_every/nearest.py > docs/results/rank1_every/nearest.txt
"""Where do London test outputs land: for outputs whose own real neutral face is not the nearest among every London
person, is the nearest another test person, a validation person or a training person?"""
import collections
import numpy as np
from scipy.spatial.distance import cdist
from nfgan.data.pairs import load_splits
from nfgan.evaluation.evaluate import load_eval_set
from nfgan.evaluation.evaluators import identity_evaluators
from nfgan.inference import load_model

es = load_eval_set("out/london64", "london", "test")
ds = es.dataset
sp = load_splits("london")
role = {str(s): k for k in ("train", "val", "test") for s in sp[k]}
rows = [r[0] for r in ds.by_subject(ds.indices(pose="frontal", expression="neutral")).values()]   # one per person
people = [str(ds.records[int(r)]["subject"]) for r in rows]
ev = identity_evaluators(["faceres"])[0]
gal = ev.embed(np.asarray(ds.images[rows]))
out = {"input": es.input_images}
for name, spec in (("default", "default"), ("cc_by", "cc_by")):
    g = load_model(spec)
    out[name] = g.normalize(es.input_images, es.poses, es.flipped, progress=False, landmarks=es.input_landmarks)
for name, imgs in out.items():
    d = cdist(ev.embed(imgs), gal)
    near = [people[i] for i in d.argmin(1)]
    wrong = [(n, s, v) for n, s, v in zip(near, es.input_subjects, es.views) if n != str(s)]
    c = collections.Counter(role[n] for n, _, _ in wrong)
    c34 = collections.Counter(role[n] for n, _, v in wrong if v == "3/4")
    print(name, "inputs", len(near), "nearest is another person:", len(wrong), dict(c), "3/4:", dict(c34),
          "distinct wrong people:", len({n for n, _, _ in wrong}),
          "most common:", collections.Counter(n for n, _, _ in wrong).most_common(3))
print("gallery people by role:", dict(collections.Counter(role[p] for p in people)))
