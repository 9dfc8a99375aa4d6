"""Identity-aware facial expression recognition with 2B[N+M]Softmax (reference [2] of the paper) and NFGAN
augmentation (Sec. 5.4): model, adaptive (N+M)-tuplet clusters loss, identity-aware batch mining,
subject-independent folds and the cross-validation runner. See docs/fer.md.
"""
from nfgan.fer.model import FERNet
from nfgan.fer.tuplet_loss import TupletClustersLoss

__all__ = ["FERNet", "TupletClustersLoss"]
