"""Regenerate tests/data/tfjs_golden/golden.npz: real London faces + the original TF.js models' outputs on them.

    cd tools/tfjs && npm ci && cd ../.. && python tools/tfjs/make_golden.py [--data ../shared/data]
    python tools/tfjs/make_golden.py --add faceres_deep,faceres_deep_gray64   # new cases, existing file kept
    python tools/tfjs/make_golden.py --add blazeface_front                    # the face detector's case

Faces: a few front photos of the Face Research Lab London Set (CC BY 4.0, DeBruine & Jones 2017), aligned
with dlib's 5-point model (``dlib.get_face_chip``, padding 0.25) to 112 x 112 RGB, plus the 64 x 64 gray
version (PIL luma). The models run in Node with pure-JS @tensorflow/tfjs (golden.js); the inputs travel as
raw uint8 files and every model-specific preprocessing step happens in golden.js, so the Python ports are
checked from the same uint8 faces through their whole public pipeline.

The face detector (BlazeFace, ``blazeface_front``) runs on whole photos instead: files shipped in the
repository (``BLAZEFACE_PHOTOS``: tests/data and examples/, CC BY 4.0 London photos, plus a two-face composite
and a smooth gradient without a face), each turned into the detector's 128 x 128 gray input by
``nfgan.data.detect.BlazeFaceDetector.prepare`` and stored as ``blazeface_inputs128``; golden.js feeds them
replicated to RGB and also decodes and suppresses the detections with tfjs ops (``boxesI`` / ``scoresI``).
Stored: every logit (``logits``, N x 896, anchor order) and the regressors of each image's ``BLAZEFACE_TOP``
best anchors (``top_index`` N x K, ``top_regressors`` N x K x 16).

``--add CASE[,CASE]`` runs only those cases, on the faces already stored in ``--out``, and adds their outputs
to it: every array already there is kept exactly (the tfjs versions must match the stored ones).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MODELS = HERE / "node_modules" / "@vladmandic" / "human-models" / "models"
FACEAPI = HERE / "node_modules" / "@vladmandic" / "face-api" / "model"
OUT = REPO / "tests" / "data" / "tfjs_golden" / "golden.npz"

# (london file, subject, expression): two people, one of them also smiling
FACES = [("neutral_front/001_03.jpg", "001", "neutral"), ("smiling_front/001_08.jpg", "001", "happy"),
         ("neutral_front/002_03.jpg", "002", "neutral")]


def aligned_faces(london: Path) -> tuple[np.ndarray, np.ndarray]:
    import dlib

    sys.path.insert(0, str(REPO / "src"))
    from nfgan.weights import dlib_model_path

    detector = dlib.get_frontal_face_detector()
    shaper = dlib.shape_predictor(str(dlib_model_path("landmarks5")))
    rgb, gray = [], []
    for rel, _, _ in FACES:
        img = np.asarray(Image.open(london / rel).convert("RGB"))
        boxes = detector(img, 1)
        if not boxes:
            raise SystemExit(f"{london / rel}: dlib found no face")
        chip = dlib.get_face_chip(img, shaper(img, boxes[0]), size=112, padding=0.25)
        rgb.append(chip)
        gray.append(np.asarray(Image.fromarray(chip).convert("L").resize((64, 64), Image.BILINEAR)))
    return np.stack(rgb), np.stack(gray)[..., None]


#: photos (repository paths) of the BlazeFace case, in order; "pair" and "noise" are made in blazeface_inputs
BLAZEFACE_PHOTOS = ["tests/data/london_001_front.jpg", "tests/data/london_001_left34.jpg",
                    "tests/data/london_001_right34.jpg", "examples/london/neutral_left_profile/006_01.jpg",
                    "pair", "gradient"]
#: regressor rows stored per image of the BlazeFace case: those of its best-scoring anchors (all 896 x 16
#: would make the file 3x larger; every logit is stored)
BLAZEFACE_TOP = 24
BLAZEFACE_OPTIONS = {"minScore": 0.5, "iou": 0.3, "maxFaces": 10}


def blazeface_inputs() -> np.ndarray:
    """The BlazeFace case's inputs: N x 128 x 128 uint8 gray, made by the port's own preprocessing."""
    sys.path.insert(0, str(REPO / "src"))
    from nfgan.data.detect import BlazeFaceDetector

    out = []
    for name in BLAZEFACE_PHOTOS:
        if name == "pair":       # two equal faces side by side (the aligner's "several faces" case)
            face = Image.open(REPO / BLAZEFACE_PHOTOS[0]).convert("L")
            img = Image.new("L", (512, 256), 200)
            img.paste(face, (0, 0))
            img.paste(face, (256, 0))
        elif name == "gradient":   # no face (smooth, so the stored input compresses well)
            yy, xx = np.mgrid[0:200, 0:300]
            img = Image.fromarray(((xx * 0.6 + 40 * np.sin(yy / 9.0)) % 256).astype(np.uint8))
        else:
            img = Image.open(REPO / name).convert("L")
        out.append(BlazeFaceDetector.prepare(img)[0])
    return np.stack(out)


def golden_cases(tmp: Path, rgb: np.ndarray, gray: np.ndarray, blaze: np.ndarray | None = None) -> list[dict]:
    """Write the faces as raw uint8 files under ``tmp`` and return every golden.js case on them."""
    (tmp / "rgb112.u8").write_bytes(rgb.tobytes())
    (tmp / "gray64.u8").write_bytes(gray.tobytes())
    gray3 = np.repeat(gray, 3, axis=-1)  # what the ports feed for gray faces
    (tmp / "gray64x3.u8").write_bytes(gray3.tobytes())
    rgb_in = {"input": str(tmp / "rgb112.u8"), "shape": list(rgb.shape)}
    gray3_in = {"input": str(tmp / "gray64x3.u8"), "shape": list(gray3.shape)}
    heads = ["global_pooling/Mean", "gender_pred/Sigmoid:0", "age_pred/Softmax:0"]
    extra = []
    if blaze is not None:
        blaze3 = np.repeat(blaze[..., None], 3, axis=-1)
        (tmp / "blaze128x3.u8").write_bytes(blaze3.tobytes())
        extra.append({"id": "blazeface_front", "kind": "blazeface", "model": str(MODELS / "blazeface-front.json"),
                      "input": str(tmp / "blaze128x3.u8"), "shape": list(blaze3.shape), "preprocess": "blazeface",
                      "size": 128, "outputs": ["Identity:0", "Identity_1:0", "Identity_2:0", "Identity_3:0"],
                      **BLAZEFACE_OPTIONS})
    return extra + [
        {"id": "faceres", "kind": "graph", "model": str(MODELS / "faceres.json"), **rgb_in,
         "preprocess": "faceres", "size": 224, "outputs": heads},
        {"id": "mobilefacenet", "kind": "graph", "model": str(MODELS / "mobilefacenet.json"), **rgb_in,
         "preprocess": "unit", "size": 112, "outputs": ["embeddings"]},
        {"id": "emotion", "kind": "graph", "model": str(MODELS / "emotion.json"),
         "input": str(tmp / "gray64.u8"), "shape": list(gray.shape), "preprocess": "emotion", "size": 64,
         "outputs": ["Identity:0"]},
        {"id": "faceapi_expression", "kind": "faceapi-expression",
         "model": str(FACEAPI / "face_expression_model-weights_manifest.json"), **rgb_in},
        # 64 x 64 gray crops (nfgan's format) replicated to RGB: exercises the resize paths
        {"id": "faceres_gray64", "kind": "graph", "model": str(MODELS / "faceres.json"), **gray3_in,
         "preprocess": "faceres", "size": 224, "outputs": ["global_pooling/Mean"]},
        {"id": "faceapi_expression_gray64", "kind": "faceapi-expression",
         "model": str(FACEAPI / "face_expression_model-weights_manifest.json"), **gray3_in},
        # faceres-deep: faceres' preprocessing (as @vladmandic/human feeds both)
        {"id": "faceres_deep", "kind": "graph", "model": str(MODELS / "faceres-deep.json"), **rgb_in,
         "preprocess": "faceres", "size": 224, "outputs": heads},
        {"id": "faceres_deep_gray64", "kind": "graph", "model": str(MODELS / "faceres-deep.json"), **gray3_in,
         "preprocess": "faceres", "size": 224, "outputs": ["global_pooling/Mean"]},
    ]


def run_golden(cases: list[dict], tmp: Path) -> dict:
    """Run ``cases`` through golden.js; returns its ``{"versions", "results"}``."""
    (tmp / "job.json").write_text(json.dumps({"cases": cases}))
    subprocess.run(["node", str(HERE / "golden.js"), str(tmp / "job.json"), str(tmp / "out.json")],
                   check=True, cwd=HERE)
    return json.loads((tmp / "out.json").read_text())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--add", default=None,
                    help="comma list of case ids to add to the existing --out (see golden_cases)")
    args = ap.parse_args(argv)
    if not MODELS.is_dir():
        raise SystemExit(f"{MODELS} missing: run `npm ci` in {HERE}")
    if args.add:
        z = np.load(args.out)
        arrays = {k: z[k] for k in z.files}
        meta = json.loads(bytes(arrays["meta_json"]).decode())
        rgb, gray = arrays["faces_rgb112"], arrays["faces_gray64"][..., None]
        if "blazeface_inputs128" not in arrays:
            arrays["blazeface_inputs128"] = blazeface_inputs()
    else:
        arrays, meta = {}, None
        rgb, gray = aligned_faces(args.data / "london")
        arrays["blazeface_inputs128"] = blazeface_inputs()
    with tempfile.TemporaryDirectory() as tmp:
        cases = golden_cases(Path(tmp), rgb, gray, arrays["blazeface_inputs128"])
        if args.add:
            want = [c for c in args.add.split(",") if c]
            known = {c["id"] for c in cases}
            if set(want) - known:
                raise SystemExit(f"--add: unknown case(s) {sorted(set(want) - known)} (known: {sorted(known)})")
            cases = [c for c in cases if c["id"] in want]
        result = run_golden(cases, Path(tmp))
    if meta is not None and meta["versions"] != result["versions"]:
        raise SystemExit(f"tfjs versions {result['versions']} differ from the stored {meta['versions']}: regenerate "
                         f"the whole file (no --add)")
    if meta is None:
        arrays = {"faces_rgb112": rgb, "faces_gray64": gray[..., 0], "blazeface_inputs128": arrays["blazeface_inputs128"]}
        meta = {"versions": result["versions"],
                "faces": [dict(zip(("path", "subject", "expression"), f)) for f in FACES],
                "source": "Face Research Lab London Set, CC BY 4.0 (DeBruine & Jones 2017, "
                          "doi:10.6084/m9.figshare.5047666)"}
    if "blazeface_front" in result["results"]:
        meta["blazeface_inputs"] = BLAZEFACE_PHOTOS
        meta["blazeface_options"] = BLAZEFACE_OPTIONS
    blaze = result["results"].get("blazeface_front")
    if blaze is not None:     # keep every logit, and the regressors of the best anchors only
        grab = lambda name: np.asarray(blaze.pop(name)["data"], np.float32).reshape(blaze_shape(name))  # noqa: E731
        blaze_shape = lambda name: [len(arrays["blazeface_inputs128"]), 512 if name in ("Identity:0", "Identity_2:0") else 384, -1]  # noqa: E731
        logits = np.concatenate([grab("Identity:0"), grab("Identity_1:0")], 1)[..., 0]
        reg = np.concatenate([grab("Identity_2:0"), grab("Identity_3:0")], 1)
        top = np.argsort(-logits, axis=1, kind="stable")[:, :BLAZEFACE_TOP]
        blaze["logits"] = {"shape": list(logits.shape), "data": logits.ravel().tolist()}
        blaze["top_index"] = {"shape": list(top.shape), "data": top.ravel().tolist()}
        sel = np.take_along_axis(reg, top[..., None], axis=1)
        blaze["top_regressors"] = {"shape": list(sel.shape), "data": sel.ravel().tolist()}
    for case, outs in result["results"].items():
        for name, t in outs.items():
            key = f"{case}|{name}"
            if args.add and key in arrays:
                raise SystemExit(f"--add: {key} is already in {args.out}")
            arrays[key] = np.asarray(t["data"], dtype=np.int32 if name == "top_index" else np.float32).reshape(t["shape"])
    arrays.pop("meta_json", None)
    arrays["meta_json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    sys.path.insert(0, str(REPO / "src"))
    from nfgan.atomic import atomic_open

    with atomic_open(args.out, "wb") as f:
        np.savez_compressed(f, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes): {sorted(arrays)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
