"""A run's stop request: SIGTERM/SIGINT or a STOP file in its folder. Apart from the callback
that checks it, because the loop installs it before Keras is loaded."""

from __future__ import annotations

import signal
from pathlib import Path

from fer_core.rundir import STOP_FILE


class StopRequest:
    """Set by SIGTERM/SIGINT or a STOP file; checked after every batch."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.signalled = False

    def __call__(self) -> bool:
        return self.signalled or (self.run_dir / STOP_FILE).exists()

    def install(self) -> None:
        def handler(signum, _frame):
            self.signalled = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, handler)
            except ValueError:
                pass  # not the main thread (e.g. called from a test thread): STOP file only
