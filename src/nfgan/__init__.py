"""nfgan: normalized (frontal, neutral) face generation after Liu et al., ISBA 2018, and identity-aware FER."""

__version__ = "0.1.0"
