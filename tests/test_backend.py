"""fer_core.backend: Keras imported once and whole, whichever threads ask for it first."""

from __future__ import annotations

import subprocess
import sys

# Six threads released at once into the first Keras import of a fresh process, as two dashboard
# script runs (a page and its rerun) are when a user changes a widget while the page loads.
RACE = """
import threading
from fer_core.backend import load_keras
errors, seen, barrier = [], [], threading.Barrier(6)
def worker():
    barrier.wait()
    try:
        seen.append(load_keras().backend.backend())
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
threads = [threading.Thread(target=worker) for _ in range(6)]
[t.start() for t in threads]
[t.join() for t in threads]
print(len(seen), len(set(seen)), errors)
"""


def test_threads_racing_for_the_first_keras_import_all_get_the_whole_module():
    done = subprocess.run([sys.executable, "-c", RACE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:2] == ["6", "1"] and done.stdout.strip().endswith("[]"), done.stdout


# Eight threads silencing stderr at overlapping times (a dataset loader's threads each making a
# detector interpreter): afterwards the process's stderr must be stderr again, not /dev/null.
OVERLAP = """
import sys, threading, time
from fer_core.backend import quiet_stderr
def worker(k):
    time.sleep(0.01 * (k % 3))
    with quiet_stderr():
        time.sleep(0.05 + 0.01 * k)
threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
print("said after the threads", file=sys.stderr, flush=True)
"""


def test_stderr_silenced_by_several_threads_comes_back():
    done = subprocess.run([sys.executable, "-c", OVERLAP], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "said after the threads" in done.stderr, done.stderr
