"""An ONNX Runtime path for classification, used where it is exact and available.

Measured on the 2-core CPU for one face: the paper CNN 2.6 ms through ONNX Runtime against 6.8 ms
for a compiled TensorFlow call (`fer-core bench` shows both). Every registered model is written to
ONNX straight from its weights by `fer_core.onnx_graph` (any backend; about 5% faster than tf2onnx's
graph for the cnn and attention_cnn, and exact for ResNet50, whose tf2onnx export disagreed by up to
0.77 in probability); a model holding a layer that writer does not know is exported with keras'
`model.export(format="onnx")` (tf2onnx, TensorFlow backend only). Either file is checked against
`model(x)` on a probe batch every time it is loaded, and cached under FER_CACHE_DIR/onnx, keyed by
a hash of the architecture and weights and by which writer made it (`onnx_call` says how the
cache holds up to several processes and to a folder it cannot write). An export that fails or
disagrees is remembered, and the caller keeps the compiled Keras call.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from fer_core import IMAGE_SIZE
from fer_core.fileio import write_atomic, write_text_atomic

# The fast path must give the same probabilities as model(x): the acceptance bound.
MAX_ABS_DIFF = 1e-4
# One model made at a time in this process (tf2onnx is not re-entrant); the lock file orders processes.
_export_lock = threading.Lock()
log = logging.getLogger(__name__)


def onnx_dir() -> Path:
    from fer_core.paths import cache_dir

    return cache_dir() / "onnx"


def model_key(model) -> str:
    """A hash of what the model computes: its architecture and every weight."""
    digest = hashlib.sha256(model.to_json().encode())
    for weight in model.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()[:32]


def _probe() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (16, IMAGE_SIZE, IMAGE_SIZE, 1)).astype(np.float32)


def onnx_call(model) -> Callable[[np.ndarray], np.ndarray] | None:
    """A function (N, 48, 48, 1) float32 → probabilities through ONNX Runtime, or None where that
    path is unavailable here or not exact for this model (said once a model, as a warning).

    The cache: a good file is used whatever else lies beside it; a failure marker (which records
    why) only stops a new attempt where there is no good file. One process at a time makes a
    file (a lock file beside it), written atomically; where the cache folder cannot be written
    (read-only, full), the file is made in memory for this process instead."""
    if any(layer.dtype_policy.compute_dtype != "float32" for layer in model.layers):
        return None  # a run saved in mixed precision; ONNX Runtime's CPU kernels are float32
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    folder, weights_key = onnx_dir(), model_key(model)
    writer = _writer(model, folder / weights_key)
    if writer is None:
        return None
    suffix, make = writer
    key = f"{weights_key}{suffix}"
    path, failed = folder / f"{key}.onnx", folder / f"{key}.failed"
    try:
        if path.exists():
            return _checked_call(model, path.read_bytes())
        if failed.exists():
            _warn_once(key, f"{model.name} keeps the Keras path: {failed.read_text().strip()} (remembered in {failed})")
            return None
        return _make_cached(model, make, path, failed, key)
    except Exception as exc:  # noqa: BLE001 - any failure here means "use the Keras path"
        _warn_once(key, f"{model.name} keeps the Keras path: {type(exc).__name__}: {exc}")
        _remember_failure(failed, path, exc)
        return None


def _make_cached(model, make: Callable[[], bytes], path: Path, failed: Path, key: str):
    """Make, check and cache the file under an inter-process lock; in memory where the folder
    cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path.with_suffix(".lock"), "a+b")  # noqa: SIM115 - held across the block below
    except OSError as exc:
        _warn_unwritable(key, path.parent, exc)
        return _checked_call(model, make())
    with lock, _export_lock:
        import fcntl

        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if path.exists():  # another process made it while this one waited
            return _checked_call(model, path.read_bytes())
        data = make()
        call = _checked_call(model, data)
        try:
            write_atomic(path, lambda temporary: temporary.write_bytes(data))
        except OSError as exc:
            _warn_unwritable(key, path.parent, exc)
        return call


def _warn_unwritable(key: str, folder: Path, exc: OSError) -> None:
    _warn_once(f"{key}:memory", f"the ONNX cache {folder} cannot be written ({exc.strerror}): made in memory")


def _checked_call(model, data: bytes) -> Callable[[np.ndarray], np.ndarray]:
    """The ONNX Runtime call on `data`, after checking it gives model(x) on a probe batch."""
    import onnxruntime

    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    outputs = [output.name for output in session.get_outputs()]

    def call(x: np.ndarray) -> np.ndarray:
        return session.run(outputs[:1], {input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    if "attention" in outputs:  # the attention map from the same forward pass (onnx_graph)

        def with_attention(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            probabilities, maps = session.run(
                [outputs[0], "attention"], {input_name: np.ascontiguousarray(x, dtype=np.float32)}
            )
            return probabilities, maps

        call.with_attention = with_attention

    probe = _probe()
    difference = float(np.abs(call(probe) - np.asarray(model(probe, training=False))).max())
    if not difference < MAX_ABS_DIFF:
        raise ValueError(f"ONNX output differs from the model by {difference:.3g}")
    return call


def _remember_failure(failed: Path, path: Path, exc: Exception) -> None:
    try:
        failed.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(failed, f"{type(exc).__name__}: {exc}\n")
        path.unlink(missing_ok=True)
    except OSError:
        pass  # a folder that cannot be written: the next start tries again, once


_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(key: str, message: str) -> None:
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning("%s", message)


def _writer(model, cached: Path) -> tuple[str, Callable[[], bytes]] | None:
    """(the cache key's suffix naming the writer, a function making the model's ONNX bytes):
    fer_core.onnx_graph where it knows every layer, else tf2onnx on the TensorFlow backend; None
    where neither applies. `cached` is the model's cache path without suffix: a graph file (or
    failure) already there settles the choice without building the graph again."""
    from fer_core.backend import load_keras
    from fer_core.inference.onnx_graph import GRAPH_VERSION, UnsupportedLayer, keras_to_onnx

    suffix = f".graph{GRAPH_VERSION}"
    if any(cached.with_name(f"{cached.name}{suffix}.{ext}").exists() for ext in ("onnx", "failed")):
        return suffix, lambda: keras_to_onnx(model).SerializeToString()
    try:
        graph = keras_to_onnx(model)
    except UnsupportedLayer as exc:
        log.info("%s goes through tf2onnx: %s", model.name, exc)
    except Exception as exc:  # noqa: BLE001 - a writer bug must cost speed, never a prediction
        log.warning("fer_core.onnx_graph failed on %s (%s: %s); trying tf2onnx", model.name, type(exc).__name__, exc)
    else:
        return suffix, graph.SerializeToString
    if load_keras().backend.backend() != "tensorflow":
        return None  # tf2onnx converts TensorFlow graphs; jax/torch keep their own compiled calls
    return "", lambda: _export(model)


def _export(model) -> bytes:
    """The model through keras' own ONNX export (tf2onnx: the `convert` extra)."""
    import tempfile

    # tf2onnx logs every graph rewrite at INFO/WARNING; the outcome is checked instead.
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    model(_probe()[:1], training=False)  # keras refuses to export a model never called
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf2onnx warns on numpy 2
        path = Path(folder) / "model.onnx"
        model.export(str(path), format="onnx", verbose=False)
        return path.read_bytes()
