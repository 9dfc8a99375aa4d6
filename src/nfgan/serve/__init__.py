"""``nfgan serve``: a small local web app - upload photos (or take one with the webcam), see their frontal
neutral faces with the identity and expression checks, download the results.

Pieces: :mod:`nfgan.serve.service` does the work without any web framework (read, align, normalise, judge,
pack the zip); :mod:`nfgan.serve.app` is the FastAPI app around it (JSON API + the static page in
``static/``); :mod:`nfgan.serve.cli` is the command. The web parts need the ``serve`` extra
(``pip install 'nfgan[serve]'``: fastapi, uvicorn, python-multipart).
"""
