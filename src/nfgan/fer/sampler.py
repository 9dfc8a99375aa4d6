"""Batches for 2B[N+M]Softmax: N positives and M negatives per query expression, identity-aware mining.

Two steps, as in reference [2] of the paper:

1. ``TupletBatchSampler`` (offline, over dataset indices) builds each batch around a few *query expressions*:
   for each, N faces of that expression from different people, then, for every one of those people, their
   faces with other expressions (and their NFGAN neutral references, Sec. 5.4) - so that the batch *contains*
   same-identity negatives - and finally random faces to fill the batch.
2. ``mine_tuplets`` (online, on the current embeddings) picks the tuplets inside the batch:
   * online positive mining: among the batch's faces of the query expression, the N farthest from their
     mean ("hard" positives; "easy" = nearest, "random" also available);
   * identity-aware hard-negative mining: the M negatives are other-expression faces of the *same subjects*
     as the chosen positives first (the identity is then the same, only the expression differs, which is the
     variation the embedding must capture), nearest to the positives' centre first; when fewer than M such
     faces exist, the remaining slots go to the nearest other-identity negatives.

Labels: ``-1`` marks an item that only serves the metric branch as a negative (an NFGAN neutral reference when
the label set has no neutral class, e.g. 7-class CK+).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterator, Sequence

import numpy as np
import torch

REFERENCE_ONLY = -1


def mine_tuplets(emb: torch.Tensor, labels: Sequence[int], subjects: Sequence[int], n_pos: int, n_neg: int,
                 positive_mining: str = "hard") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Choose (positives, negatives) index tensors for every expression with >= 2 faces in the batch.

    ``emb``: B x D embeddings (only read, no gradient), ``labels``: B ints (-1 = reference-only, never a
    positive or query), ``subjects``: B ints. Returns one tuple per query expression.
    """
    with torch.no_grad():
        e = emb.detach().float().cpu()   # a few dozen vectors: mined on the CPU, indices returned on the CPU
        lab = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        sub = torch.as_tensor(np.asarray(subjects), dtype=torch.long)
        tuplets = []
        for q in sorted(set(int(v) for v in lab.tolist()) - {REFERENCE_ONLY}):
            cand = torch.nonzero(lab == q).flatten()
            negs = torch.nonzero(lab != q).flatten()
            if len(cand) < 2 or len(negs) == 0:
                continue
            if len(cand) > n_pos:
                d = (e[cand] - e[cand].mean(dim=0)).pow(2).sum(dim=1)
                if positive_mining == "hard":
                    order = torch.argsort(d, descending=True)
                elif positive_mining == "easy":
                    order = torch.argsort(d)
                elif positive_mining == "random":
                    order = torch.randperm(len(cand))
                else:
                    raise ValueError(f"positive_mining must be hard|easy|random, got {positive_mining!r}")
                pos = cand[order[:n_pos]]
            else:
                pos = cand
            neg = select_negatives(e, pos, negs, sub, n_neg)
            tuplets.append((pos, neg))
        return tuplets


def select_negatives(emb: torch.Tensor, pos: torch.Tensor, negs: torch.Tensor, subjects: torch.Tensor,
                     n_neg: int) -> torch.Tensor:
    """Identity-aware hard-negative mining: same-subject-as-a-positive negatives first, each group ordered by
    squared distance to the positives' centre (nearest = hardest first); the first ``n_neg`` are returned."""
    centre = emb[pos].mean(dim=0)
    dist = (emb[negs] - centre).pow(2).sum(dim=1)
    same = torch.isin(subjects[negs], subjects[pos])
    # sort key: other-identity negatives after all same-identity ones (distances are <= 4 after L2-norm,
    # but use a key that does not rely on it)
    key = dist + same.logical_not().float() * (dist.max() + 1.0)
    return negs[torch.argsort(key)[:n_neg]]


class TupletBatchSampler:
    """Yields lists of item indices, each a batch built around ``n_queries`` query expressions (module doc).

    ``labels``/``subjects``: one int per training item (labels -1 = reference-only). One epoch yields
    ``ceil(number of labelled items / batch_size)`` batches.
    """

    def __init__(self, labels: Sequence[int], subjects: Sequence[int], batch_size: int = 64, n_queries: int = 4,
                 n_pos: int = 4, n_neg: int = 8, seed: int = 0):
        self.labels = np.asarray(labels, dtype=np.int64)
        self.subjects = np.asarray(subjects, dtype=np.int64)
        if len(self.labels) != len(self.subjects):
            raise ValueError("labels and subjects differ in length")
        self.batch_size, self.n_queries, self.n_pos, self.n_neg = batch_size, n_queries, n_pos, n_neg
        self.rng = np.random.default_rng(seed)
        self.by_class: dict[int, np.ndarray] = {
            int(c): np.nonzero(self.labels == c)[0] for c in np.unique(self.labels) if c != REFERENCE_ONLY}
        groups = defaultdict(list)
        for i, s in enumerate(self.subjects):
            groups[int(s)].append(i)
        self.by_subject = {s: np.asarray(v) for s, v in groups.items()}
        self.labelled = np.nonzero(self.labels != REFERENCE_ONLY)[0]
        if len(self.labelled) == 0:
            raise ValueError("no labelled training items")

    def __len__(self) -> int:
        return -(-len(self.labelled) // self.batch_size)

    def _batch(self) -> list[int]:
        rng = self.rng
        chosen: list[int] = []
        seen: set[int] = set()

        def add(items) -> None:
            for i in items:
                i = int(i)
                if i not in seen and len(chosen) < self.batch_size:
                    seen.add(i)
                    chosen.append(i)

        classes = np.array(sorted(self.by_class))
        queries = rng.choice(classes, size=min(self.n_queries, len(classes)), replace=False)
        for q in queries:
            members = self.by_class[int(q)]
            # N positives from as many different subjects as possible
            perm = rng.permutation(members)
            picked, used = [], set()
            for i in perm:
                if self.subjects[i] not in used:
                    picked.append(i)
                    used.add(int(self.subjects[i]))
                if len(picked) == self.n_pos:
                    break
            for i in perm:
                if len(picked) >= self.n_pos:
                    break
                if i not in picked:
                    picked.append(i)
            add(picked)
            # identity-aware negatives: the same people's other expressions and references
            same = [j for s in used for j in self.by_subject[s] if self.labels[j] != q]
            add(rng.permutation(np.asarray(same, dtype=np.int64))[: self.n_neg])
        if len(chosen) < self.batch_size:
            rest = rng.permutation(len(self.labels))
            add(rest[: self.batch_size * 2])
        return chosen

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(len(self)):
            yield self._batch()
