"""The web application of ``hil watch``: one page, its script and style, plotly.js from the
plotly package, and ``view.json`` (the run as it is now). Nothing is fetched from the internet.

Flask serves it through Werkzeug's threaded server on 127.0.0.1: one operator's browser, a few
requests a second at most, so a production WSGI server would add nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

import plotly
from flask import Flask, Response, jsonify, request, send_file
from werkzeug.serving import BaseWSGIServer, make_server

from hil.watch.source import NotARun, read_run
from hil.watch.view import build_figures, figure_key, page

STATIC = resources.files("hil.watch") / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
ASSETS = {"page.js": "text/javascript", "page.css": "text/css"}


FIGURE_SECONDS = 5.0  # figures are rebuilt at most this often while a run is going
SETTLED = {"done", "interrupted", "failed"}


def create_app(run_dir: Path, refresh_seconds: float = 2.0,
               figure_seconds: float = FIGURE_SECONDS) -> Flask:
    """The page of ``run_dir``. State, progress and tables are fresh on every refresh; the
    figures follow at most every ``figure_seconds`` while the run goes (on the simulated bench
    an epoch can take a second: redrawing every map that often would slow the training it
    shows), and at once when it settles."""
    app = Flask("hil.watch", static_folder=None)
    lock = threading.Lock()
    cache: dict[str, Any] = {"key": None, "figures": [], "built": -float("inf")}
    html = (STATIC / "page.html").read_text().replace("__REFRESH_MS__",
                                                      str(round(1000 * refresh_seconds)))

    @app.get("/")
    def index() -> Response:
        return Response(html, mimetype="text/html")

    @app.get("/static/<name>")
    def asset(name: str) -> Response:
        if name not in ASSETS:
            return Response("not found", status=404)
        return Response((STATIC / name).read_text(), mimetype=ASSETS[name])

    @app.get("/plotly.min.js")
    def plotly_js() -> Response:
        return send_file(PLOTLY_JS, mimetype="text/javascript", max_age=3600)

    @app.get("/view.json")
    def view() -> Response:
        try:
            data = read_run(run_dir)
        except NotARun as exc:
            return jsonify({"error": str(exc)})
        key = repr(figure_key(data))
        with lock:  # one rebuild at a time; later requests reuse it
            due = time.monotonic() - cache["built"] >= figure_seconds or data.state in SETTLED
            if cache["key"] != key and due:
                cache["figures"], cache["key"] = build_figures(data), key
                cache["built"] = time.monotonic()
            figs, key = cache["figures"], cache["key"]
        body = page(data, [] if request.args.get("have") == key else figs)
        body["figure_key"] = key
        return jsonify(body)

    return app


def serve(run_dir: Path, port: int, refresh_seconds: float = 2.0,
          figure_seconds: float = FIGURE_SECONDS) -> BaseWSGIServer:
    """A server for ``run_dir`` on 127.0.0.1:``port`` (0: any free port), not yet started."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    app = create_app(run_dir, refresh_seconds, figure_seconds)
    return make_server("127.0.0.1", port, app, threaded=True)
