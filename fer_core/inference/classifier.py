"""The fast classifier every prediction goes through (ONNX Runtime or the backend's compiled call),
and `classify_images`: the one pipeline from pictures to classified faces, in one batch."""

from __future__ import annotations

import threading

import numpy as np

from fer_core.errors import FerError
from fer_core.inference.detectors import to_gray
from fer_core.inference.faces import Face, detection_crop, find_faces
from fer_core.inference.options import DEFAULT_MIN_FACE

# Batch sizes the classifier pads to, so a compiled function sees only a few input shapes.
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
ENGINES = ("auto", "onnx", "keras")
# From this many faces a batch, engine "auto" runs the backend's compiled call even where ONNX
# Runtime wins the few-face calls a Live frame makes: at batch sizes the two measure level
# (docs/performance.md, "Why batches of 64 or more take the compiled call").
LARGE_BATCH = 64


class Classifier:
    """Calls a model on batches of 48x48 faces through ONNX Runtime or a compiled function, never
    `model.predict`.

    `model.predict` builds a data pipeline per call, tens of times the cost of the model on one
    face; a compiled call does not, and ONNX Runtime is faster still for a few faces, while from
    LARGE_BATCH faces a batch the compiled call is as fast (docs/performance.md has the numbers). Batches are padded to a
    few fixed sizes so compilation happens once per size. Thread-safe: neither path holds
    per-call state.
    """

    def __init__(self, models, engine: str = "auto", classes=None):
        """`engine`: "onnx" (ONNX Runtime, exact-checked), "keras" (the backend's compiled call), or
        "auto": ONNX Runtime where it is available and exact for the model, else Keras, and Keras
        for batches of LARGE_BATCH faces or more (built on the first such batch). `classes`: the
        models' class names in output order, carried for whoever names labels (see `classes`)."""
        self.models = list(models) if isinstance(models, (list, tuple)) else [models]
        if not self.models:
            raise FerError("no model to classify with")
        self._classes = tuple(classes) if classes is not None else None
        if engine not in ENGINES:
            raise FerError(f"unknown inference engine {engine!r}; choose one of {', '.join(ENGINES)}")
        self._calls, self.engines = [], []
        for model in self.models:
            call = None
            if engine in ("auto", "onnx"):
                from fer_core.inference.onnx_engine import onnx_call

                call = onnx_call(model)
                if call is None and engine == "onnx":
                    raise FerError(f"the ONNX Runtime path is unavailable or inexact for {model.name}")
            self.engines.append("onnx" if call is not None else "keras")
            self._calls.append(call or _compiled_call(model))
        # Per model, what large batches use: the same call, or (auto, ONNX) a compiled one made once.
        self._auto = engine == "auto"
        self._large_calls = [None if self._auto and e == "onnx" else c for e, c in zip(self.engines, self._calls)]
        self._large_lock = threading.Lock()

    def engines_for(self, batch: int) -> list[str]:
        """Which engine each model runs for a batch of `batch` faces."""
        if _bucket(min(batch, _BATCH_BUCKETS[-1])) < LARGE_BATCH or not self._auto:
            return list(self.engines)
        return ["keras"] * len(self.models)

    def _large_batch_calls(self) -> list:
        with self._large_lock:  # two threads' first large batch build one compiled call, not two
            for i, model in enumerate(self.models):
                if self._large_calls[i] is None:
                    self._large_calls[i] = _compiled_call(model)
            return list(self._large_calls)

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names; when none were given, a model's without records: FER2013's for seven
        outputs, else a one-line error (`unrecorded_classes`) the moment a label is named. Only
        probabilities are asked of it (evaluation) work either way."""
        if self._classes is None:
            from fer_core.artifacts import unrecorded_classes

            self._classes = unrecorded_classes(int(self.models[0].outputs[0].shape[-1]), self.models[0].name)
        return self._classes

    @property
    def gives_attention(self) -> bool:
        """Whether `with_attention` works: one model whose fast path outputs its attention map."""
        return len(self._calls) == 1 and hasattr(self._calls[0], "with_attention")

    def with_attention(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 48, 48[, 1]) faces → (probabilities (N, classes), attention maps (N, h, w)) from one
        forward pass through ONNX Runtime (`gives_attention`); the same probabilities `__call__` gives."""
        if not self.gives_attention:
            raise FerError(
                "this classifier's fast path gives no attention map (one attention_cnn model on ONNX Runtime does)"
            )
        x = np.asarray(faces, dtype=np.float32)
        x = x[..., None] if x.ndim == 3 else x
        n = len(x)
        size = _bucket(min(n, _BATCH_BUCKETS[-1]))
        if n > size:
            raise FerError(f"at most {size} faces a call. Received: {n}")
        if size > n:
            x = np.concatenate([x, np.zeros((size - n,) + x.shape[1:], np.float32)])
        probabilities, maps = self._calls[0].with_attention(x)
        return np.asarray(probabilities, np.float32)[:n], np.asarray(maps, np.float32)[:n]

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        """(N, 48, 48[, 1]) uint8 faces → (N, 7) float32 probabilities (mean over the models)."""
        x = np.asarray(faces, dtype=np.float32)
        if x.ndim == 3:
            x = x[..., None]
        n = len(x)
        if n == 0:
            return np.zeros((0, int(self.models[0].outputs[0].shape[-1])), dtype=np.float32)
        out = []
        for start in range(0, n, _BATCH_BUCKETS[-1]):
            chunk = x[start : start + _BATCH_BUCKETS[-1]]
            size = _bucket(len(chunk))
            if size > len(chunk):
                chunk = np.concatenate([chunk, np.zeros((size - len(chunk),) + chunk.shape[1:], np.float32)])
            calls = self._calls if size < LARGE_BATCH else self._large_batch_calls()
            probs = np.mean([np.asarray(call(chunk), dtype=np.float32) for call in calls], axis=0)
            out.append(probs[: min(len(chunk), n - start)])
        return np.concatenate(out)


def _bucket(n: int) -> int:
    """The batch size `n` faces are padded to."""
    return next(b for b in _BATCH_BUCKETS if b >= n)


def _compiled_call(model):
    """The fastest way this backend offers to run `model(x, training=False)`."""
    from fer_core.backend import load_keras

    keras = load_keras()

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        function = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        return lambda x: function(tf.constant(x)).numpy()
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        @jax.jit
        def function(x):
            outputs, _ = model.stateless_call(trainable, non_trainable, x, training=False)
            return outputs

        return lambda x: np.asarray(function(x))
    if backend == "torch":
        import torch

        def call(x):
            with torch.no_grad():
                return model(torch.from_numpy(x), training=False).cpu().numpy()

        return call
    return lambda x: keras.ops.convert_to_numpy(model(x, training=False))


def classify_image(
    image: np.ndarray,
    classifier: Classifier,
    detector,
    whole_image: bool = False,
    min_face: int = DEFAULT_MIN_FACE,
    looks=None,
) -> list[Face]:
    """Every face in a grayscale or RGB image (`classify_images` for one image).

    Raises:
        FerError: a face that cannot be cropped.
    """
    [faces] = classify_images([image], classifier, classifier.classes, detector, whole_image, min_face, looks)
    if isinstance(faces, FerError):
        raise faces
    return faces


def classify_images(
    images: list, classify, classes, detector, whole_image=False, min_face: int = DEFAULT_MIN_FACE, looks=None
) -> list[list[Face] | FerError]:
    """The one pipeline from pictures to faces: each image's faces found (`find_faces`: the
    detector sees the image as given, or the whole image for a face crop or `whole_image`, one
    flag or one per image), cropped to 48x48 grayscale (levelled on the eyes where the detector
    gives them: `detection_crop`), and every crop of every image classified by `classify` in one
    batch. Per image, in order: its faces with `classes`' names, or the FerError that stopped it
    (the others go on); an image given as None has no faces. With `looks` (a
    `fer_core.inference.looks.LookMaps`), the crops go through it: their maps are then kept under
    keys 0, 1, ... in the order of the faces returned, all images together."""
    wholes = whole_image if isinstance(whole_image, (list, tuple)) else [whole_image] * len(images)
    found, crops = [], []
    for image, whole in zip(images, wholes):
        if image is None:
            found.append([])
            continue
        try:
            detections = find_faces(image, detector, whole_image=whole, min_face=min_face)
            gray = to_gray(image) if detections else None  # once an image, not once a face
            crops += [detection_crop(gray, d) for d in detections]
        except FerError as exc:
            found.append(exc)
            continue
        found.append(detections)
    if not crops:
        probabilities = np.zeros((0, len(classes)), np.float32)
    elif looks is not None:
        probabilities = looks.classify(np.stack(crops), list(range(len(crops))))
    else:
        probabilities = classify(np.stack(crops))
    faces, start = [], 0
    for detections in found:
        if isinstance(detections, FerError):
            faces.append(detections)
            continue
        rows = probabilities[start : start + len(detections)]
        start += len(detections)
        faces.append([Face.of(d.box, p, classes, d.score, d.cut) for d, p in zip(detections, rows)])
    return faces
