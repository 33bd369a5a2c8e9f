"""The MCU protocol's shared test vectors (docs/mcu-protocol-vectors.txt): one list of exact
request and reply lines that the driver, the Python emulator and the firmware are all held to."""

from __future__ import annotations

import re
from pathlib import Path

VECTORS = Path(__file__).resolve().parents[1] / "docs" / "mcu-protocol-vectors.txt"
_REPEAT = re.compile(r"\{(.)\*(\d+)\}")
_ESCAPE = re.compile(r"\\x([0-9A-Fa-f]{2})|\\r")


def _request(text: str) -> bytes:
    text = _REPEAT.sub(lambda m: m.group(1) * int(m.group(2)), text)
    text = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)) if m.group(1) else "\r", text)
    return text.encode("latin-1")


def load_vectors() -> list[tuple[bytes, bytes]]:
    """``(request line, expected reply line)`` pairs in order, both without their newline."""
    pairs: list[tuple[bytes, bytes]] = []
    request: bytes | None = None
    for number, line in enumerate(VECTORS.read_text().splitlines(), 1):
        if line.startswith("> ") and request is None:
            request = _request(line[2:])
        elif line.startswith("< ") and request is not None:
            pairs.append((request, line[2:].encode("ascii")))
            request = None
        elif line.strip() and not line.startswith("#"):
            raise ValueError(f"{VECTORS.name}:{number}: expected '> request' then '< reply'")
    if request is not None:
        raise ValueError(f"{VECTORS.name}: the last request has no reply")
    return pairs
