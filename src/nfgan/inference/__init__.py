"""Inference: load a trained generator, export it, normalise faces and photos (``nfgan normalize``), traverse
NFGAN's latent space (``nfgan traverse``). Imports nothing from training or evaluation."""
from nfgan.inference.generator import SHIPPED_MODELS, Generator, export_model, load_model, shipped_model
from nfgan.inference.normalizer import (DEFAULT_MODEL_NAME, NFGAN_MODEL_NAME, Normalizer, NormalizerInputError,
                                        PhotoResult, default_model_path, nfgan_model_path)

__all__ = ["Generator", "load_model", "export_model", "Normalizer", "NormalizerInputError", "PhotoResult",
           "default_model_path", "nfgan_model_path", "DEFAULT_MODEL_NAME", "NFGAN_MODEL_NAME",
           "SHIPPED_MODELS", "shipped_model"]
