"""Importing Keras once, quietly.

TensorFlow writes start-up lines ("Could not find cuda drivers...") straight to file descriptor 2
from C++ before its logging is initialised; no environment variable silences them, and they
would break the CLI's one-line error contract. So the first import runs with fd 2 pointed at
/dev/null; Python-level errors from the import still raise normally.
"""

from __future__ import annotations

import os
import sys
import threading

_lock = threading.Lock()


def load_keras():
    """The `keras` module, imported with the backend's native start-up chatter hidden."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    with _lock:
        if "keras" in sys.modules:
            return sys.modules["keras"]
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), 2)
                import keras
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        return keras
