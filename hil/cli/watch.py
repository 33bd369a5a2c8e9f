"""``hil watch``: follow a run in the browser while it is written and after it ends."""

from __future__ import annotations

import argparse
import socket
import threading
from pathlib import Path

from hil.cli.console import console
from hil.errors import HilError
from hil.watch.app import serve
from hil.watch.browser import headless_chromium
from hil.watch.source import NotARun, read_run

DEFAULT_PORT = 8765


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "watch", help="follow a run in the browser (training, characterisation, studies)",
        description="Serve a page on 127.0.0.1 that follows RUN while it is written and after "
        "it ends: state, progress and ETA, accuracy per epoch beside the paper's, pulses and "
        "reads, conductance maps drawn as the PCB boards, the CDF; for characterisation the "
        "board maps and the replacement list; for studies the curves as trials finish. The run "
        "is only read; nothing is loaded from the internet.")
    p.add_argument("run_dir", metavar="RUN", help="run directory (it may not exist yet)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, metavar="N",
                   help="TCP port on 127.0.0.1 (0: any free port)")
    p.add_argument("--refresh", type=float, default=2.0, metavar="SECONDS",
                   help="seconds between the page's refreshes")
    p.add_argument("--screenshot", metavar="PNG",
                   help="save the page as it is now to PNG (headless Chromium) and exit")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise HilError(f"--port {args.port}: expected 0-65535")
    if args.refresh < 0.2:
        raise HilError(f"--refresh {args.refresh:g}: at least 0.2 seconds")
    run_dir = Path(args.run_dir)
    try:
        read_run(run_dir)
    except NotARun as exc:
        console.say(f"note: {exc}; the page will say so until a run appears there")
    _check_port(args.port)
    server = serve(run_dir, args.port, args.refresh)
    url = f"http://127.0.0.1:{server.server_port}/"
    if args.screenshot:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            screenshot(url, Path(args.screenshot))
        finally:
            server.shutdown()
            server.server_close()
        console.result(f"page of {run_dir} saved to {args.screenshot}")
        return 0
    console.result(f"watching {run_dir} at {url} (Ctrl-C stops)")
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def _check_port(port: int) -> None:
    """Refuse a port nobody can listen on in one line (the server itself would print several
    and exit)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise HilError(f"--port {port}: cannot listen on 127.0.0.1:{port} "
                           f"({exc.strerror}); choose another with --port") from None


def screenshot(url: str, path: Path, timeout: float = 60.0) -> None:
    """The page once its figures are drawn, the whole page tall."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with headless_chromium(1400, 1000) as driver:
        driver.get(url)
        WebDriverWait(driver, timeout).until(lambda d: d.find_elements(
            By.CSS_SELECTOR, "#figures .main-svg") or not d.find_element(
            By.ID, "message").get_attribute("hidden") is not None)
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1400, min(int(height) + 40, 6000))
        driver.save_screenshot(str(path))
