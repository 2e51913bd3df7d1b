"""Importing Keras once, quietly.

TensorFlow writes start-up lines ("Could not find cuda drivers...") straight to file descriptor 2
from C++ before its logging is initialised; no environment variable silences them, and they
would break the CLI's one-line error contract. So the first import runs with fd 2 pointed at
/dev/null; Python-level errors from the import still raise normally.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import threading

_lock = threading.Lock()
_loaded: list = []  # the keras module, once its import has finished


# File descriptor 2 pointed at /dev/null while native code prints what no flag silences; shared by
# every thread, so the first in saves the real stderr and the last out puts it back (two threads
# each saving and restoring on their own could leave it at /dev/null for good).
_stderr_lock = threading.Lock()
_quiet_state = {"depth": 0, "saved": None}


@contextlib.contextmanager
def quiet_stderr():
    """The process's stderr (fd 2) silenced while the block runs, safely across threads."""
    with _stderr_lock:
        if _quiet_state["depth"] == 0:
            try:
                saved = os.dup(2)
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 2)
                os.close(null)
            except OSError:
                saved = None
            _quiet_state["saved"] = saved
        _quiet_state["depth"] += 1
    try:
        yield
    finally:
        with _stderr_lock:
            _quiet_state["depth"] -= 1
            saved = _quiet_state["saved"]
            if _quiet_state["depth"] == 0 and saved is not None:
                os.dup2(saved, 2)
                os.close(saved)
                _quiet_state["saved"] = None


def load_keras():
    """The `keras` module, imported with the backend's native start-up chatter hidden.

    Once, whole, whatever the threads: `keras` is in sys.modules from the moment its import
    begins, so a second caller (two dashboard script runs at once) that took it from there would
    get a partially initialized module ("has no attribute 'backend'"); callers wait here instead."""
    if _loaded:
        return _loaded[0]
    with _lock:
        if _loaded:
            return _loaded[0]
        if "keras" in sys.modules:  # imported elsewhere (fer_core.models), possibly still under way
            import keras

            _loaded.append(keras)
            return keras
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        sys.stderr.flush()
        with quiet_stderr():
            import keras
        _loaded.append(keras)
        return keras


# The processor features that decide training speed here (see resolve_precision).
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    """The processor's feature flags (empty where /proc/cpuinfo is not there)."""
    try:
        with open(cpuinfo, errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def environment() -> dict:
    """The hardware, backend and versions numbers were produced with (for benchmarks and model cards)."""
    keras = load_keras()
    info = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
    }
    try:
        with open("/proc/cpuinfo") as handle:
            info["cpu"] = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "?")
    except OSError:
        info["cpu"] = platform.processor() or "?"
    info["cpu_flags"] = sorted(set(SPEED_FLAGS) & cpu_flags())
    if info["backend"] == "tensorflow":
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        info["threads"] = {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        }
    elif info["backend"] == "jax":
        import jax

        info["jax"] = jax.__version__
    gpus = gpu_names()
    if gpus:
        info["gpus"] = gpus
    return info


def gpu_names() -> list[str]:
    """The GPUs the active Keras backend computes on, by name (empty on a CPU-only machine)."""
    backend = load_keras().backend.backend()
    try:
        if backend == "jax":
            import jax

            return [d.device_kind for d in jax.devices() if d.platform == "gpu"]
        if backend == "torch":
            import torch

            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if backend == "tensorflow":
            import tensorflow as tf

            return [
                tf.config.experimental.get_device_details(d).get("device_name", d.name)
                for d in tf.config.list_physical_devices("GPU")
            ]
    except Exception:  # a backend that cannot list devices has none we can use
        return []
    return []


def has_gpu() -> bool:
    """Whether the active Keras backend sees a GPU."""
    return bool(gpu_names())


def resolve_precision(precision: str, flags: set[str] | None = None, gpu: bool | None = None) -> str:
    """'auto' → mixed_bfloat16 on a GPU or a CPU with native bf16 (avx512_bf16 / amx_bf16), else
    float32. Measured on 2-core CPUs with TensorFlow: bf16 roughly doubles training speed where
    the CPU has bf16 instructions and is ~5x slower where it has only AVX2."""
    if precision != "auto":
        return precision
    if flags is None:
        flags = cpu_flags()
    if gpu is None:
        gpu = has_gpu()
    return "mixed_bfloat16" if gpu or {"avx512_bf16", "amx_bf16"} & flags else "float32"
