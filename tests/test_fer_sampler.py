"""Identity-aware hard-negative mining, online positive mining and tuplet batch construction."""
from __future__ import annotations

import numpy as np
import torch

from nfgan.fer.sampler import REFERENCE_ONLY, TupletBatchSampler, mine_tuplets, select_negatives


def test_hard_negative_miner_prefers_same_subject():
    # positives 0,1 (subjects 10, 11); negatives: 2 is very close but another person (12);
    # 3 and 4 are far but belong to the positives' subjects -> they must come first
    emb = torch.tensor([[0.0, 0.0], [0.2, 0.0], [0.1, 0.05], [2.0, 0.0], [1.0, 0.0], [0.15, 0.0]])
    subjects = torch.tensor([10, 11, 12, 10, 11, 13])
    neg = select_negatives(emb, torch.tensor([0, 1]), torch.tensor([2, 3, 4, 5]), subjects, n_neg=3)
    assert neg.tolist()[:2] == [4, 3]          # same-subject, nearest first
    assert neg.tolist()[2] == 2                # then the nearest other-identity negative
    only_two = select_negatives(emb, torch.tensor([0, 1]), torch.tensor([2, 3, 4, 5]), subjects, n_neg=2)
    assert sorted(only_two.tolist()) == [3, 4]


def test_mine_tuplets_positive_mining_and_references():
    # class 0: items 0..3 (3 is an outlier), class 1: items 4,5, reference-only item 6 (subject of item 0)
    emb = torch.tensor([[0, 0], [0.1, 0], [0, 0.1], [1.5, 1.5], [3, 3], [3.1, 3], [0.05, 0.05]])
    labels = [0, 0, 0, 0, 1, 1, REFERENCE_ONLY]
    subjects = [1, 2, 3, 4, 5, 6, 1]
    tuplets = mine_tuplets(emb, labels, subjects, n_pos=2, n_neg=2, positive_mining="hard")
    assert len(tuplets) == 2                   # one per expression with >= 2 faces; reference never a query
    pos0, neg0 = tuplets[0]
    assert 3 in pos0.tolist()                  # hardest positive = farthest from the class mean
    assert all(labels[i] != 0 for i in neg0.tolist())
    easy = mine_tuplets(emb, labels, subjects, n_pos=2, n_neg=2, positive_mining="easy")[0][0]
    assert 3 not in easy.tolist()
    # the same-identity neutral reference (subject 1) is picked as a negative when subject 1 is a positive
    pos_e, neg_e = mine_tuplets(emb, labels, subjects, n_pos=3, n_neg=1, positive_mining="easy")[0]
    assert 0 in pos_e.tolist() and neg_e.tolist() == [6]


def test_batch_sampler_contains_same_subject_negatives():
    rng = np.random.default_rng(0)
    n_subj, per = 12, 4
    subjects = np.repeat(np.arange(n_subj), per)
    labels = np.tile(np.arange(per), n_subj)           # every subject shows every expression once
    labels[rng.choice(len(labels), 5, replace=False)] = REFERENCE_ONLY
    sampler = TupletBatchSampler(labels, subjects, batch_size=24, n_queries=2, n_pos=3, n_neg=4, seed=1)
    assert len(sampler) == -(-int((labels != REFERENCE_ONLY).sum()) // 24)
    gen = torch.Generator().manual_seed(0)   # not the global RNG: the result must not depend on test order
    for batch in sampler:
        assert len(batch) == len(set(batch)) == 24
        lab, sub = labels[batch], subjects[batch]
        tuplets = mine_tuplets(torch.randn(len(batch), 8, generator=gen), lab, sub, 3, 4)
        assert tuplets
        with_same_subject = 0
        for pos, neg in tuplets:
            q = int(lab[pos[0]])
            ps = set(sub[pos.numpy()])
            # negatives from a positive's own subject (other expressions, references) come first, all of them
            # up to M; an expression that only entered the batch as filler may have none in the batch
            available = [j for j in range(len(batch)) if sub[j] in ps and lab[j] != q]
            chosen_same = sum(int(sub[j] in ps) for j in neg.numpy())
            assert chosen_same == min(len(available), 4)
            with_same_subject += bool(available)
        # the sampler puts the query expressions' positives in with their own other faces
        assert with_same_subject >= 2
