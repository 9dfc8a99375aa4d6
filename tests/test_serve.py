"""``nfgan serve``: the JSON API (FastAPI's TestClient) and the page in a real headless browser.

The API answers are checked against the Python API on the shipped example photos: the normalised and aligned
faces are pixel for pixel ``Normalizer.normalize_photos``'s, the identity distance is the faceres distance the
demo computes, against the calibrated threshold stored in the model file, and the expressions are fer's top
classes. The browser test starts ``nfgan serve`` on a free port of 127.0.0.1, uploads photos through the page
with Debian's chromium (Selenium + chromium-driver; skipped when they are missing - tools/install_browser.sh
installs them), reads the numbers the page shows and saves a screenshot (to a temporary folder; the README's
docs/figures/serve.png is made with NFGAN_SERVE_SCREENSHOT=docs/figures/serve.png).
"""
from __future__ import annotations

import base64
import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="nfgan serve needs the serve extra: pip install 'nfgan[serve]'")
pytest.importorskip("python_multipart", reason="nfgan serve needs python-multipart (the serve extra)")
try:
    from fastapi.testclient import TestClient
except (ImportError, RuntimeError) as e:   # Starlette's TestClient needs httpx2 (or httpx)
    pytest.skip(f"FastAPI's TestClient is unavailable ({e}); pip install httpx2", allow_module_level=True)

import nfgan
from nfgan.serve.app import create_app
from nfgan.serve.service import MAX_REQUEST_BYTES

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "london"
FRONTAL = EXAMPLES / "smiling_front" / "006_08.jpg"
THREE_QUARTER = EXAMPLES / "smiling_left_3quarter" / "124_07.jpg"
NO_FACE = EXAMPLES / "neutral_right_profile" / "006_05.jpg"     # a profile: the HOG detector finds no face
SCREENSHOT = os.environ.get("NFGAN_SERVE_SCREENSHOT")   # where the screenshot goes (default: the test's tmp folder)


def decode_png(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def python_api(paths, model=None, largest_face=False) -> dict:
    """What the Python API says about the photos: faces, aligned crops, poses, errors, faceres distances,
    the calibrated threshold and fer's labels (computed the way the demo does)."""
    from nfgan.evaluation.evaluators import identity_evaluators
    from nfgan.models.auxiliary.expression_fer import ExpressionClassifier

    norm = nfgan.Normalizer.from_checkpoint(model)
    res = norm.normalize_photos(list(paths), largest_face=largest_face)
    ok = [i for i, e in enumerate(res.errors) if e is None]
    out = {"res": res, "threshold": norm.generator.info["identity_thresholds"]["faceres"], "dist": {},
           "expr_in": {}, "expr_out": {}}
    if ok:
        crops = np.stack([res.aligned[i].crop for i in ok])
        faces = np.stack([res.faces[i] for i in ok])
        ev = identity_evaluators(["faceres"])[0]
        dist = np.linalg.norm(ev.embed(crops) - ev.embed(faces), axis=1)
        clf = ExpressionClassifier()
        out["dist"] = dict(zip(ok, map(float, dist)))
        out["expr_in"] = dict(zip(ok, clf.predict_labels(crops)))
        out["expr_out"] = dict(zip(ok, clf.predict_labels(faces)))
    return out


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app()) as c:
        yield c


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("serve") / "broken.jpg"
    path.write_bytes(b"\xff\xd8 this is not really a JPEG " * 10)   # not a JPEG despite its name and first bytes
    return path


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory) -> Path:
    """Two frontal faces of the same size side by side: none dominates."""
    from nfgan.data.images import read_gray_image

    a, b = (np.asarray(read_gray_image(p)) for p in (FRONTAL, EXAMPLES / "neutral_front" / "124_03.jpg"))
    path = tmp_path_factory.mktemp("serve") / "two_faces.png"
    Image.fromarray(np.concatenate([a, b], axis=1)).save(path)
    return path


def post(client, paths, **data):
    files = [("photos", (Path(p).name, Path(p).read_bytes(), "application/octet-stream")) for p in paths]
    return client.post("/api/normalize", files=files, data=data)


@pytest.fixture(scope="module")
def mixed(client, broken):
    """One request with a frontal and a 3/4 photo, a broken file and a photo without a usable face."""
    paths = [FRONTAL, THREE_QUARTER, broken, NO_FACE]
    r = post(client, paths)
    assert r.status_code == 200, r.text
    return paths, r.json(), python_api(paths)


def test_page_and_models(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script src="/static/app.js">' in page.text
    assert client.get("/static/app.js").status_code == 200
    assert "/api/normalize" in client.get("/api/openapi.json").json()["paths"]
    assert client.get("/api/docs").status_code == 404     # Swagger's page would load scripts from a CDN
    info = client.get("/api/models").json()
    assert info["default"] == "default"
    assert [m["key"] for m in info["models"]] == ["default", "cc_by", "london", "nfgan"]
    labels = {m["key"]: m["label"] for m in info["models"]}
    files = {m["key"]: m["file"] for m in info["models"]}
    assert "non-commercial research use only" in labels["default"] and "no research-only data" in labels["cc_by"]
    assert files == {"default": "pix2pix_all_data_research64.safetensors", "cc_by": "pix2pix_cc_by64.safetensors",
                     "london": "pix2pix_lid_frontalized_london64.safetensors", "nfgan": "nfgan_london64.safetensors"}
    assert info["limits"]["max_images"] == 10 and info["limits"]["max_request_bytes"] == MAX_REQUEST_BYTES


def test_api_equals_python_api(mixed):
    paths, answer, ref = mixed
    res = ref["res"]
    assert answer["model"]["key"] == "default" and answer["model"]["kind"] == "pix2pix"
    assert answer["identity"]["threshold"] == ref["threshold"]
    assert answer["summary"] == {"photos": 4, "normalized": 2, "failed": 2}
    for i in (0, 1):
        r = answer["results"][i]
        assert r["ok"] and r["name"] == paths[i].name
        assert np.array_equal(decode_png(r["images"]["normalized"]), res.faces[i])
        assert np.array_equal(decode_png(r["images"]["aligned"]), res.aligned[i].crop)
        assert r["pose"] == res.poses[i]
        assert r["flipped"] == res.aligned[i].flipped
        assert r["box"] == pytest.approx(list(res.aligned[i].box), abs=0.051)
        assert r["identity"]["distance"] == pytest.approx(ref["dist"][i], abs=1e-6)
        assert r["identity"]["threshold"] == ref["threshold"]
        assert r["identity"]["same_person"] == (ref["dist"][i] <= ref["threshold"])
        assert r["expression"]["input"]["label"] == ref["expr_in"][i]
        assert r["expression"]["output"]["label"] == ref["expr_out"][i]
        photo = decode_png(r["images"]["photo"])
        assert photo.ndim == 3 and max(photo.shape[:2]) <= 320
    assert answer["results"][0]["pose"] == "frontal"
    assert answer["results"][1]["pose"] == "left_3quarter"


def test_unusable_photos_are_explained(mixed):
    _, answer, ref = mixed
    bad, no_face = answer["results"][2], answer["results"][3]
    assert not bad["ok"] and bad["reason"] == "not an image" and "not an image" in bad["message"]
    assert not no_face["ok"] and no_face["reason"] == "no face" and "No face" in no_face["message"]
    assert ref["res"].errors[3].startswith("no face")
    assert "photo" in no_face["images"] and "normalized" not in no_face["images"]
    assert not bad["can_take_largest"] and not no_face["can_take_largest"]


def test_download_zip(client, mixed):
    _, answer, ref = mixed
    r = client.get(answer["download"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    z = zipfile.ZipFile(io.BytesIO(r.content))
    rows = list(csv.DictReader(io.StringIO(z.read("results.csv").decode())))
    assert [row["status"] for row in rows] == ["ok", "ok", "failed", "failed"]
    assert [row["reason"] for row in rows[2:]] == ["not an image", "no face"]
    assert float(rows[0]["identity_distance"]) == pytest.approx(ref["dist"][0], abs=1e-6)
    face = np.asarray(Image.open(io.BytesIO(z.read("01_006_08_normalized.png"))))
    assert np.array_equal(face, ref["res"].faces[0])
    assert client.get("/api/results/unknown.zip").status_code == 404


def test_several_faces_then_the_largest(client, two_faces):
    r = post(client, [two_faces]).json()["results"][0]
    assert not r["ok"] and r["reason"] == "several faces" and r["can_take_largest"]
    assert "largest" in r["message"]
    r = post(client, [two_faces], largest_face="1").json()["results"][0]
    assert r["ok"] and r["faces_found"] == 2
    ref = python_api([two_faces], largest_face=True)
    assert np.array_equal(decode_png(r["images"]["normalized"]), ref["res"].faces[0])
    assert r["identity"]["distance"] == pytest.approx(ref["dist"][0], abs=1e-6)


def test_nfgan_model_choice(client):
    answer = post(client, [FRONTAL], model="nfgan").json()
    assert answer["model"]["kind"] == "nfgan"
    ref = python_api([FRONTAL], model=nfgan.nfgan_model_path())
    assert np.array_equal(decode_png(answer["results"][0]["images"]["normalized"]), ref["res"].faces[0])
    assert answer["results"][0]["identity"]["distance"] == pytest.approx(ref["dist"][0], abs=1e-6)


def test_bad_requests(client):
    r = client.post("/api/normalize", data={"model": "default"})
    assert r.status_code == 400 and "No photos" in r.json()["detail"]
    r = post(client, [FRONTAL], model="nope")
    assert r.status_code == 400 and "Unknown model" in r.json()["detail"]


def test_oversized_requests_get_413(client):
    big = [("photos", ("big.jpg", b"\0" * (MAX_REQUEST_BYTES + 1024 * 1024), "image/jpeg"))]
    r = client.post("/api/normalize", files=big)
    assert r.status_code == 413
    assert "at most 10 photos and 20 MB" in r.json()["detail"]
    r = client.post("/api/normalize", files=[("photos", (f"p{i}.jpg", b"x", "image/jpeg")) for i in range(11)])
    assert r.status_code == 413 and "11 photo(s)" in r.json()["detail"]


def test_streamed_body_over_the_limit_gets_413():
    """No Content-Length (chunked upload): the limit holds while the body streams in."""
    with TestClient(create_app(max_request_bytes=1024)) as small:
        def chunks():
            yield b"--x\r\nContent-Disposition: form-data; name=\"photos\"; filename=\"a.jpg\"\r\n\r\n"
            for _ in range(100):
                yield b"\0" * 8192
        r = small.post("/api/normalize", content=chunks(),
                       headers={"content-type": "multipart/form-data; boundary=x"})
        assert r.status_code == 413 and "at most 10 photos and 0 MB" in r.json()["detail"]


def test_cli_refuses_a_missing_model(tmp_path, capsys):
    from nfgan.cli import main

    assert main(["serve", "--model", str(tmp_path / "missing.safetensors"), "--port", "0"]) == 2
    assert "missing.safetensors" in capsys.readouterr().err


def test_too_many_pixels_is_explained():
    with TestClient(create_app(max_pixels=100_000)) as small:
        r = post(small, [FRONTAL]).json()["results"][0]
    assert not r["ok"] and r["reason"] == "too large" and "0.1 megapixels" in r["message"]


# ------------------------------------------------------------------------------------------ the browser
@pytest.fixture(scope="module")
def browser() -> tuple[str, str]:
    """Paths of chromium and chromedriver; skips the browser tests when they or selenium are missing."""
    binary = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        pytest.skip("no chromium / chromedriver installed (bash tools/install_browser.sh installs them)")
    pytest.importorskip("selenium", reason="pip install selenium (bash tools/install_browser.sh)")
    return binary, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 2.0) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # never through a proxy
    with opener.open(url, timeout=timeout) as r:
        return r.read()


@pytest.fixture(scope="module")
def server(browser, tmp_path_factory):
    """``nfgan serve`` on a free port of 127.0.0.1, as a child process (started only when there is a browser
    to use it); at the end it is stopped with Ctrl+C (SIGINT) and must exit cleanly."""
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "NO_PROXY": "127.0.0.1"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "nfgan", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.time()
        while True:
            try:
                assert b"ok" in _get(url + "/api/health")
                break
            except OSError:
                if proc.poll() is not None or time.time() - t0 > 180:
                    raise AssertionError("nfgan serve did not start:\n" + log_path.read_text())
                time.sleep(0.3)
        yield url
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(30) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def chrome(browser, tmp_path_factory):
    """Headless chromium driven by Selenium through Debian's chromedriver (Selenium Manager never runs); a
    1200 x 800 viewport; a fake camera for getUserMedia; no host but 127.0.0.1 resolves."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = browser
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900",
                "--hide-scrollbars", "--force-device-scale-factor=1",
                f"--user-data-dir={tmp_path_factory.mktemp('chrome-profile')}",
                "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions", "--disable-default-apps",
                "--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"):
        options.add_argument(arg)
    d = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        d.set_page_load_timeout(60)
        d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",      # the viewport itself 1200 x 800
                          {"width": 1200, "height": 800, "deviceScaleFactor": 1, "mobile": False})
        yield d
    finally:
        d.quit()


def _open_page(chrome, url):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    chrome.get(url + "/")
    # the page re-renders its lists while a condition reads them: a stale element means "look again"
    wait = WebDriverWait(chrome, 240, ignored_exceptions=(StaleElementReferenceException,))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) == 4)   # default, cc_by, london, nfgan
    return wait


def _cards_or_error(n):
    from selenium.webdriver.common.by import By

    return lambda d: (len(d.find_elements(By.CSS_SELECTOR, "#cards .card")) == n
                      or d.find_element(By.ID, "error").is_displayed())


def test_browser_upload_to_result(server, chrome, tmp_path):
    from selenium.webdriver.common.by import By

    url, driver = server, chrome
    paths = [FRONTAL, THREE_QUARTER, NO_FACE]
    ref = python_api(paths)
    wait = _open_page(driver, url)
    assert driver.find_element(By.ID, "model").get_attribute("value") == "default"
    driver.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in paths))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#chosen li")) == 3)
    driver.find_element(By.ID, "go").click()
    wait.until(_cards_or_error(3))
    assert not driver.find_element(By.ID, "error").is_displayed(), driver.find_element(By.ID, "error").text
    cards = driver.find_elements(By.CSS_SELECTOR, "#cards .card")
    assert driver.find_element(By.ID, "summary").text.startswith("2 of 3 photo(s) normalised")
    for i in (0, 1):
        card = cards[i]
        assert card.get_attribute("data-name") == paths[i].name
        shown_distance = float(card.find_element(By.CSS_SELECTOR, ".id-distance").text)
        shown_threshold = float(card.find_element(By.CSS_SELECTOR, ".id-threshold").text)
        assert abs(shown_distance - ref["dist"][i]) <= 0.0005 + 1e-9
        assert abs(shown_threshold - ref["threshold"]) <= 0.0005 + 1e-9
        verdict = card.find_element(By.CSS_SELECTOR, ".verdict").text
        assert ("same person" in verdict) == (ref["dist"][i] <= ref["threshold"])
        assert card.find_element(By.CSS_SELECTOR, ".expr-in").text.split()[0] == ref["expr_in"][i]
        assert card.find_element(By.CSS_SELECTOR, ".expr-out").text.split()[0] == ref["expr_out"][i]
        src = card.find_element(By.CSS_SELECTOR, "img.normalized").get_attribute("src")
        assert np.array_equal(decode_png(src.split(",", 1)[1]), ref["res"].faces[i])
    failed = cards[2]
    assert failed.get_attribute("data-reason") == "no face"
    assert "No face was found" in failed.find_element(By.CSS_SELECTOR, ".message").text
    link = driver.find_element(By.ID, "download").get_attribute("href")
    assert link.startswith(url + "/api/results/") and zipfile.is_zipfile(io.BytesIO(_get(link)))
    driver.execute_script("window.scrollTo(0, 0)")
    shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    assert shot.size == (1200, 800)
    from nfgan.atomic import save_image

    target = Path(SCREENSHOT) if SCREENSHOT else tmp_path / "serve.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    save_image(target, shot.quantize(colors=256, method=Image.Quantize.MEDIANCUT))   # a small PNG
    assert target.stat().st_size > 10_000


def test_browser_take_the_largest_and_webcam(server, chrome, two_faces):
    """A photo with two faces gets the "Take the largest face" button, which normalises it; the (fake) webcam
    adds a photo to the selection."""
    from selenium.webdriver.common.by import By

    url, driver = server, chrome
    wait = _open_page(driver, url)
    driver.find_element(By.ID, "files").send_keys(str(two_faces))
    driver.find_element(By.ID, "go").click()
    wait.until(_cards_or_error(1))
    card = driver.find_element(By.CSS_SELECTOR, "#cards .card")
    assert card.get_attribute("data-reason") == "several faces"
    card.find_element(By.CSS_SELECTOR, ".take-largest").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#cards .card.ok"))
    ref = python_api([two_faces], largest_face=True)
    card = driver.find_element(By.CSS_SELECTOR, "#cards .card.ok")
    assert abs(float(card.find_element(By.CSS_SELECTOR, ".id-distance").text) - ref["dist"][0]) <= 0.0005 + 1e-9
    src = card.find_element(By.CSS_SELECTOR, "img.normalized").get_attribute("src")
    assert np.array_equal(decode_png(src.split(",", 1)[1]), ref["res"].faces[0])

    driver.find_element(By.ID, "webcam-start").click()
    wait.until(lambda d: d.execute_script("return document.getElementById('video').videoWidth") > 0)
    driver.find_element(By.ID, "webcam-shot").click()
    wait.until(lambda d: "webcam-1.png" in d.find_element(By.ID, "chosen").text)
    driver.find_element(By.ID, "webcam-stop").click()
    assert not driver.find_element(By.ID, "webcam").is_displayed()


def test_other_shipped_names_of_an_offered_model_are_accepted():
    """SHIPPED_MODELS gives the default's file a second name (all_data): a request naming it gets the default's
    choice; names of files the page does not offer stay unknown."""
    from nfgan.serve.service import NormalizeService

    svc = NormalizeService()
    assert svc.aliases == {"all_data": "default"}
    with pytest.raises(KeyError, match="unknown model 'no_such'"):
        svc.normalizer("no_such")


def test_detector_choice_of_the_server(tmp_path):
    """``nfgan serve --detector blazeface``: every request aligns with that detector, exactly as
    ``normalize_photos(detector="blazeface")`` does; BlazeFace leaves profiles out, so the profile that HOG
    misses is "no face" here too, and an unknown detector is refused when the service starts."""
    from nfgan.serve.service import NormalizeService, Upload

    svc = NormalizeService(detector="blazeface")
    assert svc.models()["detector"] == "blazeface"
    paths = [FRONTAL, THREE_QUARTER, NO_FACE]
    answer = svc.process([Upload(p.name, p.read_bytes()) for p in paths], "cc_by")
    ref = nfgan.Normalizer.from_checkpoint("cc_by").normalize_photos(list(paths), detector="blazeface")
    hog = nfgan.Normalizer.from_checkpoint("cc_by").normalize_photos(list(paths))
    for i in (0, 1):
        r = answer["results"][i]
        assert r["ok"]
        assert np.array_equal(decode_png(r["images"]["aligned"]), ref.aligned[i].crop)
        assert np.array_equal(decode_png(r["images"]["normalized"]), ref.faces[i])
        assert r["box"] == pytest.approx(list(ref.aligned[i].box), abs=0.051)
        assert r["box"] != pytest.approx(list(hog.aligned[i].box), abs=0.5)    # not HOG's box
    assert answer["results"][2]["reason"] == "no face"
    with pytest.raises(ValueError, match="unknown detector 'mtcnn'"):
        NormalizeService(detector="mtcnn")
