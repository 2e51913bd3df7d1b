"""An ONNX Runtime path for classification, used where it is exact and available.

Measured on the 2-core CPU for one face: the paper CNN 2.6 ms through ONNX Runtime against 6.8 ms
for a compiled TensorFlow call (`fer-core bench` shows both). Every registered model is written to
ONNX straight from its weights by `fer_core.onnx_graph` (any backend; about 5% faster than tf2onnx's
graph for the cnn and attention_cnn, and exact for ResNet50, whose tf2onnx export disagreed by up to
0.77 in probability); a model holding a layer that writer does not know is exported with keras'
`model.export(format="onnx")` (tf2onnx, TensorFlow backend only). Either file is checked against
`model(x)` on a probe batch every time it is loaded, and cached under FER_CACHE_DIR/onnx, keyed by
a hash of the architecture and weights and by which writer made it. An export that fails or
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
from fer_core.fileio import write_text_atomic

# The fast path must give the same probabilities as model(x): the acceptance bound.
MAX_ABS_DIFF = 1e-4
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
    path is unavailable here or not exact for this model."""
    if any(layer.dtype_policy.compute_dtype != "float32" for layer in model.layers):
        return None  # a run saved in mixed precision; ONNX Runtime's CPU kernels are float32
    try:
        import onnxruntime
    except ImportError:
        return None
    folder, weights_key = onnx_dir(), model_key(model)
    writer = _writer(model, folder / weights_key)
    if writer is None:
        return None
    suffix, write = writer
    key = f"{weights_key}{suffix}"
    path, failed = folder / f"{key}.onnx", folder / f"{key}.failed"
    if failed.exists():
        return None
    try:
        if not path.exists():
            write(path)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name

        def call(x: np.ndarray) -> np.ndarray:
            return session.run(None, {input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]

        probe = _probe()
        difference = float(np.abs(call(probe) - np.asarray(model(probe, training=False))).max())
        if not difference < MAX_ABS_DIFF:
            raise ValueError(f"ONNX output differs from the model by {difference:.3g}")
        return call
    except Exception as exc:  # noqa: BLE001 - any failure here means "use the Keras path"
        log.info("ONNX path unavailable for %s: %s", model.name, exc)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_text_atomic(failed, f"{type(exc).__name__}: {exc}\n")
            path.unlink(missing_ok=True)
        except OSError:
            pass
        return None


def _writer(model, cached: Path) -> tuple[str, Callable[[Path], None]] | None:
    """(the cache key's suffix naming the writer, a function writing the model's ONNX file there):
    fer_core.onnx_graph where it knows every layer, else tf2onnx on the TensorFlow backend; None
    where neither applies. `cached` is the model's cache path without suffix: a graph file (or
    failure) already there settles the choice without building the graph again."""
    from fer_core.backend import load_keras
    from fer_core.inference.onnx_graph import GRAPH_VERSION, UnsupportedLayer, keras_to_onnx

    suffix = f".graph{GRAPH_VERSION}"
    if any(cached.with_name(f"{cached.name}{suffix}.{ext}").exists() for ext in ("onnx", "failed")):
        return suffix, lambda path: _write_atomic(path, lambda temporary: _save(keras_to_onnx(model), temporary))
    try:
        graph = keras_to_onnx(model)
    except UnsupportedLayer as exc:
        log.info("%s goes through tf2onnx: %s", model.name, exc)
    except Exception as exc:  # noqa: BLE001 - a writer bug must cost speed, never a prediction
        log.warning("fer_core.onnx_graph failed on %s (%s: %s); trying tf2onnx", model.name, type(exc).__name__, exc)
    else:
        return suffix, lambda path: _write_atomic(path, lambda temporary: _save(graph, temporary))
    if load_keras().backend.backend() != "tensorflow":
        return None  # tf2onnx converts TensorFlow graphs; jax/torch keep their own compiled calls
    return "", lambda path: _export(model, path)


def _save(graph, path: str) -> None:
    import onnx

    onnx.save(graph, path)


def _write_atomic(path: Path, write: Callable[[str], None]) -> None:
    """`write(temporary)`, then the file appears at `path` whole or not at all."""
    from fer_core.fileio import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda temporary: write(str(temporary)))


def _export(model, path: Path) -> None:
    # tf2onnx logs every graph rewrite at INFO/WARNING; the outcome is checked instead.
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    model(_probe()[:1], training=False)  # keras refuses to export a model never called

    def export(temporary: str) -> None:
        with _export_lock, warnings.catch_warnings():  # tf2onnx is not re-entrant, and warns on numpy 2
            warnings.simplefilter("ignore")
            model.export(temporary, format="onnx", verbose=False)

    _write_atomic(path, export)
