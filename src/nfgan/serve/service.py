"""What ``nfgan serve`` does with uploaded photos, without any web framework (so it can be used and tested alone).

:meth:`NormalizeService.process` takes uploads (name + bytes), reads each one with the reader every command
uses (:func:`nfgan.data.images.read_gray_image`), hands the readable photos to
:meth:`nfgan.inference.normalizer.Normalizer.normalize_photos` - so the normalised faces are exactly the Python
API's - and judges every (aligned input, normalised output) pair the way ``make demo`` does:

* identity: L2 distance of the faceres embeddings (``nfgan.evaluation.evaluators``) against the threshold
  calibrated at 1 % false accepts on real faces that the model file carries (``identity_thresholds``, written by
  tools/export_default_model.py); a model file without one is judged with the shipped default model's
  calibration (the calibration is of the evaluator on real faces, not of the model) and says so;
* expression: the top class of fer's classifier (``ExpressionClassifier``) on the input and on the output.

A photo that cannot be used gets a reason and a readable message instead (not an image, no face, several
faces - ``largest_face=True`` then takes the largest -, ...); the others go on. Each answer is kept for a while
as a zip (PNGs + results.csv) under an id, for the download link.
"""
from __future__ import annotations

import base64
import csv
import io
import re
import secrets
import tempfile
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: what a request may carry (the page checks the same limits before sending)
MAX_IMAGES = 10
MAX_REQUEST_BYTES = 20 * 1024 * 1024
#: longer side of the photo thumbnail with the face box
THUMB_SIDE = 320
#: the identity evaluator and the expression classifier the page reports (the demo's faceres and fer)
IDENTITY_EVALUATOR = "faceres"
EXPRESSION_EVALUATOR = "fer"
#: how many answers stay downloadable as a zip
KEEP_RESULTS = 20

#: readable messages for the reasons of nfgan.data.images.ImageReadError and nfgan.data.align.AlignError
MESSAGES = {
    "not an image": "This file is not an image. Photos are read as JPEG, PNG, BMP, TIFF, GIF, WebP or PPM/PGM.",
    "unsupported format": "This image format is not read. Photos are read as JPEG, PNG, BMP, TIFF, GIF, WebP "
                          "or PPM/PGM.",
    "corrupt image": "The image data is damaged or cut short; it cannot be decoded.",
    "empty file": "The file is empty.",
    "too large": "The image has too many pixels to be read safely (limit {max_mpx:g} megapixels).",
    "unsupported image": "The image's pixel format cannot be turned into gray values.",
    "no face": "No face was found. The detector finds faces from frontal to about three-quarter view; "
               "profiles and very small, dark or blurred faces are often missed.",
    "several faces": "Several faces of similar size were found and none clearly dominates. Take the largest "
                     "face, or crop the photo to one person.",
    "face too small": "The face is too small to be normalised; use a photo where the face is larger.",
    "landmarks failed": "A face was found, but its landmarks could not be fitted (a strong turn, a covered "
                        "face or blur).",
}
ALIGN_REASONS = ("no face", "several faces", "face too small", "landmarks failed")


@dataclass
class Upload:
    """One uploaded file: the name the browser gave it and its bytes."""

    name: str
    data: bytes


class RequestTooLarge(ValueError):
    """More images or bytes than a request may carry (the web app answers HTTP 413 with the message)."""


def limits_message(max_images: int = MAX_IMAGES, max_bytes: int = MAX_REQUEST_BYTES) -> str:
    return f"at most {max_images} photos and {max_bytes / 2 ** 20:.0f} MB in all per request"


def png_bytes(image) -> bytes:
    """A uint8 array (gray or RGB) or PIL image as PNG bytes (lossless: the pixels come back unchanged)."""
    from PIL import Image

    im = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def b64png(image) -> str:
    return base64.b64encode(png_bytes(image)).decode("ascii")


def finite(value, digits: int | None = None):
    """A float for JSON: None when not finite, optionally rounded."""
    v = float(value)
    if not np.isfinite(v):
        return None
    return round(v, digits) if digits is not None else v


def safe_stem(name: str, limit: int = 60) -> str:
    """A file name's stem reduced to characters that are safe in any zip and file system."""
    stem = Path(name.replace("\\", "/")).stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "photo"
    return stem[:limit]


def photo_with_box(gray, aligned=None, side: int = THUMB_SIDE):
    """RGB thumbnail (longer side at most ``side``) of a gray PIL photo, with the detected face box in green and
    the 68 landmarks as yellow dots when ``aligned`` (an ``AlignedFace``) is given."""
    from PIL import Image, ImageDraw

    w, h = gray.size
    scale = min(1.0, side / max(w, h))
    im = gray.convert("RGB")
    if scale < 1.0:
        im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)
    if aligned is not None:
        draw = ImageDraw.Draw(im)
        sx, sy = im.width / w, im.height / h
        l, t, r, b = aligned.box
        width = max(2, round(max(im.size) / 100))
        draw.rectangle([(l + 0.5) * sx - 0.5, (t + 0.5) * sy - 0.5, (r + 0.5) * sx - 0.5, (b + 0.5) * sy - 0.5],
                       outline=(40, 220, 60), width=width)
        try:
            points = aligned.source_landmarks()
        except Exception:   # landmarks are a nicety: a photo without them still gets its box
            points = np.zeros((0, 2))
        for x, y in points:
            if np.isfinite(x) and np.isfinite(y):
                cx, cy = (x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5
                draw.ellipse([cx - 1.5, cy - 1.5, cx + 1.5, cy + 1.5], fill=(255, 210, 0))
    return im


def split_reason(message: str) -> tuple[str, str]:
    """``(reason, detail)`` of an error text of ``Normalizer.normalize_photos`` (an AlignError's is
    ``"reason: detail"``)."""
    for reason in ALIGN_REASONS:
        if message == reason or message.startswith(reason + ":"):
            return reason, message[len(reason):].lstrip(": ")
    return "error", message


class NormalizeService:
    """Models, evaluators and the answers kept for download; thread-safe (one request computes at a time).

    ``model_path``: a model file, checkpoint or run folder offered as the choice ``custom`` (and then the
    default choice); the shipped models ``default`` (research use only), ``cc_by``, ``london`` and ``nfgan`` are
    always offered, each labelled with its training data and terms. Models and evaluators are loaded on first
    use (:meth:`warm_up` loads them at once). ``detector``: the face detector of every request
    (``nfgan.data.align.DETECTORS``; "hog" by default, as ``nfgan normalize``).
    """

    def __init__(self, model_path: str | Path | None = None, device: str = "cpu", max_images: int = MAX_IMAGES,
                 max_request_bytes: int = MAX_REQUEST_BYTES, max_pixels: int | None = None,
                 keep_results: int = KEEP_RESULTS, detector: str = "hog"):
        from nfgan.data.align import check_detector
        from nfgan.data.images import DEFAULT_MAX_PIXELS
        from nfgan.inference.generator import SHIPPED_MODELS, shipped_model
        from nfgan.inference.normalizer import default_model_path, nfgan_model_path

        self.detector = check_detector(detector)
        self.device = device
        self.max_images = int(max_images)
        self.max_request_bytes = int(max_request_bytes)
        self.max_pixels = int(max_pixels or DEFAULT_MAX_PIXELS)
        self.keep_results = int(keep_results)
        self.choices: dict[str, tuple[str, Path]] = {}
        if model_path is not None:
            self.choices["custom"] = (f"your model ({Path(model_path).name})", Path(model_path))
        self.choices["default"] = ("default normaliser (five face sets, expression lever, mouth and brow skips "
                                   "shut, perceptual loss, synthetic expressions and turned faces; non-commercial "
                                   "research use only)",
                                   default_model_path())
        self.choices["cc_by"] = ("CC BY normaliser (London + canada data only, mouth and brow skips shut; "
                                 "no research-only data)",
                                 shipped_model("cc_by"))
        self.choices["london"] = ("London normaliser (London data only, CC BY; the earlier default)",
                                  shipped_model("london"))
        self.choices["nfgan"] = ("NFGAN (encoder / decoder; London data, CC BY)", nfgan_model_path())
        self.default_choice = next(iter(self.choices))
        #: other shipped names of an offered file (SHIPPED_MODELS: all_data is the default's file)
        self.aliases = {name: key for name, file in SHIPPED_MODELS.items() if name not in self.choices
                        for key, (_, path) in self.choices.items() if path.name == file}
        self._normalizers: dict = {}
        self._identity = None
        self._expression = None
        self._results: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.RLock()            # models and computing: one request at a time
        self._store_lock = threading.Lock()       # the kept answers (downloads never wait for a computation)

    # -- models -------------------------------------------------------------------------------------------
    def normalizer(self, key: str):
        """The :class:`~nfgan.inference.normalizer.Normalizer` of a model choice (loaded once)."""
        from nfgan.inference.normalizer import Normalizer

        if key not in self.choices:
            raise KeyError(f"unknown model {key!r}; choose one of {', '.join(self.choices)}")
        with self._lock:
            if key not in self._normalizers:
                self._normalizers[key] = Normalizer.from_checkpoint(self.choices[key][1], device=self.device)
            return self._normalizers[key]

    def identity_evaluator(self):
        from nfgan.evaluation.evaluators import identity_evaluators

        with self._lock:
            if self._identity is None:
                found = identity_evaluators([IDENTITY_EVALUATOR])
                if not found:
                    raise RuntimeError(f"the {IDENTITY_EVALUATOR} identity evaluator is unavailable")
                self._identity = found[0]
            return self._identity

    def expression_classifier(self):
        from nfgan.models.auxiliary.expression_fer import ExpressionClassifier

        with self._lock:
            if self._expression is None:
                self._expression = ExpressionClassifier()
            return self._expression

    def threshold(self, key: str) -> tuple[float | None, str]:
        """The identity threshold for a model choice and where it comes from."""
        own = (self.normalizer(key).generator.info.get("identity_thresholds") or {}).get(IDENTITY_EVALUATOR)
        if own is not None:
            return float(own), "calibrated at 1 % false accepts on real faces (stored in the model file)"
        shipped = (self.normalizer("default").generator.info.get("identity_thresholds") or {}).get(IDENTITY_EVALUATOR)
        if shipped is not None:
            return float(shipped), ("the model file has none: the shipped default model's calibration "
                                    "(1 % false accepts on real faces)")
        return None, "no calibrated threshold available"

    def warm_up(self, key: str | None = None) -> None:
        """Load a model choice (default: the default choice) and both evaluators now."""
        self.normalizer(key or self.default_choice)
        self.threshold(key or self.default_choice)
        self.identity_evaluator()
        self.expression_classifier()

    def models(self) -> dict:
        """The model choices for the page (nothing is loaded)."""
        return {"default": self.default_choice,
                "models": [{"key": k, "label": label, "file": path.name} for k, (label, path) in self.choices.items()],
                "limits": {"max_images": self.max_images, "max_request_bytes": self.max_request_bytes,
                           "text": limits_message(self.max_images, self.max_request_bytes)},
                "evaluators": {"identity": IDENTITY_EVALUATOR, "expression": EXPRESSION_EVALUATOR},
                "detector": self.detector}

    # -- work ---------------------------------------------------------------------------------------------
    def check_limits(self, uploads: list[Upload]) -> None:
        total = sum(len(u.data) for u in uploads)
        if len(uploads) > self.max_images or total > self.max_request_bytes:
            raise RequestTooLarge(f"Too much at once: {len(uploads)} photo(s), {total / 2 ** 20:.1f} MB; "
                                  f"send {limits_message(self.max_images, self.max_request_bytes)}.")

    def _message(self, reason: str, detail: str) -> str:
        text = MESSAGES.get(reason)
        if text is None:
            return detail or reason
        return text.format(max_mpx=self.max_pixels / 1e6)

    def process(self, uploads: list[Upload], model: str | None = None, largest_face: bool = False) -> dict:
        """Normalise the uploaded photos; the JSON-ready answer (see docs in :mod:`nfgan.serve.app`)."""
        from nfgan.data.images import ImageReadError, read_gray_image

        if not uploads:
            raise ValueError("no photos given")
        self.check_limits(uploads)
        key = self.aliases.get(model, model) or self.default_choice
        with self._lock:
            norm = self.normalizer(key)
            threshold, threshold_source = self.threshold(key)
            results = [{"index": i, "name": u.name, "ok": False, "reason": None, "message": None, "detail": None,
                        "can_take_largest": False, "images": {}} for i, u in enumerate(uploads)]
            photos: dict[int, object] = {}
            with tempfile.TemporaryDirectory(prefix="nfgan-serve-") as tmp:
                for i, u in enumerate(uploads):
                    path = Path(tmp) / f"upload{i:02d}"   # never the browser's name: it is only shown
                    path.write_bytes(u.data)
                    try:
                        photos[i] = read_gray_image(path, max_pixels=self.max_pixels)
                    except ImageReadError as e:
                        results[i].update(reason=e.reason, detail=e.detail, message=self._message(e.reason, e.detail))
            readable = sorted(photos)
            res = norm.normalize_photos([photos[i] for i in readable], largest_face=largest_face,
                                        detector=self.detector)
            ok = []
            for j, i in enumerate(readable):
                r, gray, a = results[i], photos[i], res.aligned[j]
                r["size"] = list(gray.size)
                if res.errors[j] is not None:
                    reason, detail = split_reason(res.errors[j])
                    r.update(reason=reason, detail=detail, message=self._message(reason, detail),
                             can_take_largest=reason == "several faces" and not largest_face)
                    r["images"]["photo"] = b64png(photo_with_box(gray))
                    continue
                ok.append((i, j))
                r.update(ok=True, pose=res.poses[j], yaw_deg=finite(a.yaw_deg, 2), flipped=bool(a.flipped),
                         faces_found=int(a.n_faces), box=[finite(v, 1) for v in a.box])
                r["images"] = {"photo": b64png(photo_with_box(gray, a)), "aligned": b64png(a.crop),
                               "normalized": b64png(res.faces[j])}
            if ok:
                crops = np.stack([res.aligned[j].crop for _, j in ok])
                outs = np.stack([res.faces[j] for _, j in ok])
                ev = self.identity_evaluator()
                dist = np.linalg.norm(ev.embed(crops) - ev.embed(outs), axis=1)
                clf = self.expression_classifier()
                p_in, p_out = clf.predict(crops), clf.predict(outs)
                for n, (i, _) in enumerate(ok):
                    d = float(dist[n])
                    results[i]["identity"] = {
                        "evaluator": IDENTITY_EVALUATOR, "distance": d, "threshold": threshold,
                        "same_person": None if threshold is None else bool(d <= threshold)}
                    results[i]["expression"] = {
                        "classifier": EXPRESSION_EVALUATOR,
                        "input": _expression(clf.labels, p_in[n]), "output": _expression(clf.labels, p_out[n])}
            answer = {
                "model": {"key": key, "label": self.choices[key][0], "file": self.choices[key][1].name,
                          "kind": norm.kind},
                "largest_face": bool(largest_face),
                "identity": {"evaluator": IDENTITY_EVALUATOR, "threshold": threshold,
                             "threshold_source": threshold_source,
                             "rule": "same person when the distance is at most the threshold"},
                "expression": {"classifier": EXPRESSION_EVALUATOR},
                "results": results,
                "summary": {"photos": len(uploads), "normalized": len(ok), "failed": len(uploads) - len(ok)},
            }
        job = secrets.token_urlsafe(12)
        packed = results_zip(answer)
        with self._store_lock:
            self._results[job] = packed
            while len(self._results) > self.keep_results:
                self._results.popitem(last=False)
        answer["id"] = job
        return answer

    def result_zip(self, job: str) -> bytes | None:
        with self._store_lock:
            return self._results.get(job)


def _expression(labels, probs) -> dict:
    k = int(np.argmax(probs))
    return {"label": labels[k], "probability": finite(probs[k], 4),
            "neutral_probability": finite(probs[list(labels).index("neutral")], 4)}


CSV_COLUMNS = ("index", "name", "status", "reason", "message", "pose", "yaw_deg", "flipped", "faces_found",
               "identity_evaluator", "identity_distance", "identity_threshold", "same_person",
               "expression_input", "expression_output", "model", "files")


def results_zip(answer: dict) -> bytes:
    """The answer as a zip: per photo ``NN_name_photo.png`` (with the face box), ``_aligned.png`` and
    ``_normalized.png`` (64 x 64, the exact faces), and ``results.csv`` with the numbers."""
    buf = io.BytesIO()
    rows = []
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for r in answer["results"]:
            base = f"{r['index'] + 1:02d}_{safe_stem(r['name'])}"
            files = []
            for kind, data in r["images"].items():
                name = f"{base}_{kind}.png"
                z.writestr(name, base64.b64decode(data))
                files.append(name)
            ident, expr = r.get("identity") or {}, r.get("expression") or {}
            rows.append({
                "index": r["index"] + 1, "name": r["name"], "status": "ok" if r["ok"] else "failed",
                "reason": r["reason"] or "", "message": r["message"] or "", "pose": r.get("pose", ""),
                "yaw_deg": r.get("yaw_deg", ""), "flipped": r.get("flipped", ""),
                "faces_found": r.get("faces_found", ""), "identity_evaluator": ident.get("evaluator", ""),
                "identity_distance": "" if "distance" not in ident else f"{ident['distance']:.6f}",
                "identity_threshold": "" if ident.get("threshold") is None else f"{ident['threshold']:.6f}",
                "same_person": "" if ident.get("same_person") is None else ident["same_person"],
                "expression_input": (expr.get("input") or {}).get("label", ""),
                "expression_output": (expr.get("output") or {}).get("label", ""),
                "model": answer["model"]["file"], "files": " ".join(files)})
        text = io.StringIO()
        w = csv.DictWriter(text, fieldnames=CSV_COLUMNS)
        w.writeheader()
        w.writerows(rows)
        z.writestr("results.csv", text.getvalue())
    return buf.getvalue()
