"""The web app of ``nfgan serve``: a FastAPI app around :class:`nfgan.serve.service.NormalizeService`.

Routes (all answers JSON except the page, its files and the zip; errors are ``{"detail": "readable text"}``):

* ``GET /`` - the page (``static/index.html`` + ``app.js`` + ``style.css``; no build step);
* ``GET /api/models`` - the model choices, the default one, the request limits and the evaluators;
* ``POST /api/normalize`` - multipart form: ``photos`` (one or several files), ``model`` (a key from
  ``/api/models``, optional), ``largest_face`` (``1``/``true`` to take the largest of several faces). Answers
  ``{id, model, largest_face, identity: {evaluator, threshold, threshold_source}, results: [...], summary,
  download}``; per photo ``{index, name, ok, reason, message, can_take_largest, size, pose, yaw_deg, flipped,
  faces_found, box, images: {photo, aligned, normalized} (base64 PNG), identity: {distance, threshold,
  same_person}, expression: {input, output: {label, probability, neutral_probability}}}``. A failed photo has
  ``ok: false`` with ``reason`` and ``message``; the request as a whole still answers 200;
* ``GET /api/results/{id}.zip`` - the PNGs and ``results.csv`` of an answer (the last few are kept);
* ``GET /api/health``; ``GET /api/openapi.json`` (the schema; no Swagger page, which would load a CDN).

Too many photos or bytes: HTTP 413 with the limits in the message - checked from ``Content-Length`` before
the body is read, while it streams in (no length given), and on the parsed files.
"""
from __future__ import annotations

import json
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from nfgan.serve.service import (MAX_IMAGES, MAX_REQUEST_BYTES, NormalizeService, RequestTooLarge, Upload,
                                 limits_message)

STATIC = Path(__file__).resolve().parent / "static"
#: room for the multipart framing and the form fields on top of the photos' bytes
FORM_OVERHEAD = 256 * 1024


class BodyLimit:
    """Pure ASGI middleware: a request body over ``max_bytes`` gets HTTP 413 with ``message`` - at once when
    ``Content-Length`` says so, else as soon as the streamed body passes the limit."""

    def __init__(self, app, max_bytes: int, message: str):
        self.app = app
        self.max_bytes = int(max_bytes)
        self.message = message

    async def _refuse(self, send) -> None:
        body = json.dumps({"detail": self.message}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_bytes
            except ValueError:
                too_big = False
            if too_big:
                return await self._refuse(send)
        seen = 0
        started = False

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, self.message)
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except HTTPException as e:
            if e.status_code != 413 or started:
                raise
            await self._refuse(send)


def _flag(value) -> bool:
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


def create_app(service: NormalizeService | None = None, **service_args) -> FastAPI:
    """The app; ``service_args`` go to :class:`NormalizeService` when no ``service`` is given."""
    service = service or NormalizeService(**service_args)
    too_large = (f"The request is too large: send {limits_message(service.max_images, service.max_request_bytes)}.")
    # no Swagger / ReDoc pages: they load their scripts from a CDN, and this app talks to nothing but itself
    app = FastAPI(title="nfgan serve", description="Frontal neutral faces from photos", docs_url=None,
                  redoc_url=None, openapi_url="/api/openapi.json")
    app.state.service = service
    app.add_middleware(BodyLimit, max_bytes=service.max_request_bytes + FORM_OVERHEAD, message=too_large)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/api/models")
    def models() -> dict:
        return service.models()

    @app.post("/api/normalize")
    async def normalize(request: Request) -> JSONResponse:
        form = await request.form(max_files=max(1000, service.max_images + 1))
        try:
            uploads = []
            for item in form.getlist("photos"):
                if isinstance(item, UploadFile):
                    uploads.append(Upload(item.filename or f"photo {len(uploads) + 1}", await item.read()))
            model = str(form.get("model") or "") or None
            largest = _flag(form.get("largest_face"))
        finally:
            await form.close()
        if not uploads:
            raise HTTPException(400, "No photos in the request: send one or several files in the field 'photos'.")
        if model is not None and model not in service.choices:
            raise HTTPException(400, f"Unknown model {model!r}: choose one of {', '.join(service.choices)}.")
        try:
            service.check_limits(uploads)
        except RequestTooLarge as e:
            raise HTTPException(413, str(e)) from None
        answer = await run_in_threadpool(service.process, uploads, model, largest)
        answer["download"] = f"/api/results/{answer['id']}.zip"
        return JSONResponse(answer)

    @app.get("/api/results/{job}.zip")
    def download(job: str) -> Response:
        data = service.result_zip(job)
        if data is None:
            raise HTTPException(404, "These results are no longer kept; normalise the photos again.")
        return Response(data, media_type="application/zip",
                        headers={"Content-Disposition": 'attachment; filename="nfgan-results.zip"'})

    return app


__all__ = ["BodyLimit", "MAX_IMAGES", "MAX_REQUEST_BYTES", "create_app"]
