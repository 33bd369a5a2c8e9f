"""SIGTERM taken the way Ctrl-C is, so every command that measures leaves the bench safe and
its run resumable whichever way it is stopped."""

from __future__ import annotations

import signal


class terminate_as_interrupt:
    """Within the block SIGTERM raises ``KeyboardInterrupt``; the old handler comes back after."""

    def __enter__(self) -> None:
        self._old = signal.signal(signal.SIGTERM, self._raise)

    @staticmethod
    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGTERM, self._old)
