"""Stop a long job cleanly on SIGINT / SIGTERM: the first signal asks it to stop at its next safe point
(where it writes a checkpoint), a second one ends the process at once with exit status 128 + the signal's
number (130 / 143, the shell's convention), as SystemExit: ``finally`` blocks still run and no traceback is
printed. A KeyboardInterrupt here made a twice-sent SIGTERM exit 130 with a traceback.

Used by the BA-Net training loop and imatching-adapt. Handlers are installed only from the main thread
(Python delivers signals there) and the previous ones are restored on exit.
"""

from __future__ import annotations

import logging
import signal
import threading

logger = logging.getLogger(__name__)

__all__ = ["StopSignals"]


class StopSignals:
    """SIGINT / SIGTERM ask the loop to stop at the next step boundary (and checkpoint); a second one
    exits at once (SystemExit(128 + signum)). Installed only from the main thread (Python delivers signals
    there)."""

    def __init__(self) -> None:
        self.received: str = ""
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.received:  # asked twice: stop now, without a checkpoint
            self.restore()
            logger.warning("%s again: stopping at once, without a checkpoint", name)
            raise SystemExit(128 + signum)
        self.received = name
        logger.warning("%s: stopping after the current step with a checkpoint (again: stop at once)", name)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def __exit__(self, *exc) -> None:
        self.restore()
