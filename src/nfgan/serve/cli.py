"""``nfgan serve``: start the local web app (FastAPI, served by uvicorn) and print its address."""
from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from nfgan.inference.normalizer import positive_int
from nfgan.serve.service import MAX_IMAGES, MAX_REQUEST_BYTES

INSTALL_HINT = "nfgan serve needs the serve extra: pip install 'nfgan[serve]' (fastapi, uvicorn, python-multipart)"


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, got {value}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    from nfgan.data.align import DETECTORS
    from nfgan.device import DEVICE_HELP

    p.add_argument("--port", type=_port, default=8000, help="port to listen on (default 8000; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this computer only; 0.0.0.0 opens it to the network)")
    p.add_argument("--model", type=Path, default=None,
                   help="a model file, checkpoint or run folder to offer first, besides the shipped models "
                        "(default: non-commercial research use only; cc_by: CC BY data only; london; nfgan)")
    p.add_argument("--detector", choices=DETECTORS, default="hog",
                   help="face detector for every photo: hog (dlib HOG, default), cnn (dlib MMOD, slow on CPU) or "
                        "blazeface (faster; no profiles)")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)
    p.add_argument("--max-images", type=positive_int, default=MAX_IMAGES,
                   help=f"photos per request (default {MAX_IMAGES})")
    p.add_argument("--max-mb", type=positive_int, default=MAX_REQUEST_BYTES // 2 ** 20,
                   help=f"megabytes of photos per request (default {MAX_REQUEST_BYTES // 2 ** 20})")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 after a clean stop, 2 when the server cannot start (missing extra, bad model or device)."""
    try:
        import uvicorn

        from nfgan.serve.app import create_app
    except ImportError as e:
        print(f"error: {INSTALL_HINT} ({e})", file=sys.stderr)
        return 2
    from nfgan.checkpoint import CheckpointError
    from nfgan.device import DeviceError
    from nfgan.serve.service import NormalizeService

    try:
        service = NormalizeService(args.model, device=args.device, max_images=args.max_images,
                                   max_request_bytes=args.max_mb * 2 ** 20, detector=args.detector)
        print("loading the model and the evaluators ...", file=sys.stderr)
        service.warm_up()
    except (CheckpointError, DeviceError, ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not _loopback(args.host):
        print(f"warning: listening on {args.host}: anyone who can reach this computer can use the app",
              file=sys.stderr)
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    if args.port:
        print(f"nfgan serve: open http://{shown_host}:{args.port}/ (Ctrl+C stops it)", file=sys.stderr)
    uvicorn.run(create_app(service), host=args.host, port=args.port, log_level="info")
    return 0
