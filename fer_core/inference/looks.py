"""Where the model looks, over moving pictures: a map per face, blended into its box.

Two sources, chosen by the classifier:

- "attention": attention_cnn's spatial attention map, read from the same ONNX Runtime forward pass
  that gives the probabilities (`Classifier.with_attention`): fresh on every frame, at no cost
  beyond the blend.
- "gradcam": Grad-CAM (`fer_core.inference.gradcam`) for any other model. A backward pass costs
  tens of milliseconds, more than a live frame can spare, so it runs on one worker thread off the
  frame path: each frame hands the worker the crops of the faces whose map is older than
  `refresh_s` and draws the last map each face has (its age is reported, the page says it).

Maps belong to a key (Live's track id, Video's face id), so a map follows its face between
refreshes. Nothing here is drawn when the overlay is off: the frame path stays the plain one.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from fer_core.errors import FerError

LOOK_KINDS = ("attention", "gradcam")
# How much of the colour a box shows over the face (the rest is the picture): the face's features
# stay visible under the map.
LOOK_OPACITY = 0.45
# A tracked face's Grad-CAM is recomputed when older than this: about three maps a second a face,
# which two cores keep up with beside a 25-frame/s stream (`fer-core bench`, live.*.overlay_*).
GRADCAM_REFRESH_S = 0.3
# The Grad-CAM worker ends after this long without a face to explain.
WORKER_IDLE_S = 5.0


class LookMaps:
    """The maps of one stream's faces, by key.

    Args:
        classifier: the stream's `Classifier`; with one attention model on ONNX Runtime the maps
            are its attention, else Grad-CAM of its first model.
        kind: force "gradcam" (or "attention", refused where the classifier gives none).
        refresh_s: how old a Grad-CAM map may grow before its face is sent to the worker again.
        background: Grad-CAM on the worker thread (False: computed in `classify` itself, for a
            video file, where every analysed frame should carry a fresh map).
    """

    def __init__(self, classifier, kind: str | None = None, refresh_s: float = GRADCAM_REFRESH_S, background=True):
        if kind is not None and kind not in LOOK_KINDS:
            raise FerError(f"unknown map kind {kind!r}; choose one of {', '.join(LOOK_KINDS)}")
        # A classifier wrapped for test-time augmentation gives no map of its own: Grad-CAM then.
        attention = getattr(classifier, "gives_attention", False)
        if kind == "attention" and not attention:
            raise FerError("this model gives no attention map: choose Grad-CAM (or an attention_cnn model)")
        self.classifier = classifier
        self.kind = kind or ("attention" if attention else "gradcam")
        self.refresh_s, self.background = refresh_s, background
        self._maps: dict[int, tuple[np.ndarray, float]] = {}  # key -> (map in [0, 1], made at)
        self._pending: dict[int, np.ndarray] = {}  # key -> the newest crop waiting for Grad-CAM
        self._asked: dict[int, float] = {}  # key -> when its crop was last handed to the worker
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._worker: threading.Thread | None = None
        self.maps_made = 0  # Grad-CAM maps the worker finished (the bench and tests read it)

    def classify(self, crops: np.ndarray, keys: list[int]) -> np.ndarray:
        """The probabilities of `crops` (N, 48, 48) uint8, one per key, as the classifier gives
        them; the keys' maps refreshed (attention) or queued for refreshing (Grad-CAM)."""
        if self.kind == "attention":
            probabilities, maps = self.classifier.with_attention(crops)
            now = time.monotonic()
            with self._lock:
                for key, raw in zip(keys, maps):
                    self._maps[key] = (unit(raw), now)
            return probabilities
        probabilities = self.classifier(crops)
        now = time.monotonic()
        if not self.background:
            heats, made = self._gradcam(np.asarray(crops)), time.monotonic()
            with self._lock:
                for key, heat in zip(keys, heats):
                    self._maps[key] = (heat, made)
            return probabilities
        with self._lock:
            for key, crop in zip(keys, crops):
                if now - self._asked.get(key, -np.inf) >= self.refresh_s:
                    self._pending[key] = np.array(crop, copy=True)
                    self._asked[key] = now
            waiting = bool(self._pending)
        if waiting:
            self._start_worker()
            self._wake.set()
        return probabilities

    def maps(self, keys: list[int]) -> list[tuple[np.ndarray | None, float | None]]:
        """Per key: its latest map ((h, w) in [0, 1]) and its age in seconds, or (None, None)."""
        now = time.monotonic()
        with self._lock:
            found = [self._maps.get(key) for key in keys]
        return [(None, None) if entry is None else (entry[0], now - entry[1]) for entry in found]

    def forget(self, keep: set[int]) -> None:
        """Drop the maps and requests of faces no longer followed."""
        with self._lock:
            for table in (self._maps, self._pending, self._asked):
                for key in [k for k in table if k not in keep]:
                    del table[key]

    def close(self) -> None:
        """Stop the worker (it ends after the map in progress)."""
        self._closed = True
        self._wake.set()

    def _start_worker(self) -> None:
        with self._lock:  # the worker clears `_worker` under this lock as it ends: never two
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="fer-look-maps", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        """Explain what waits until nothing has for WORKER_IDLE_S: the thread then ends (a stream
        that stopped, a viewer gone) and the next request starts another."""
        while not self._closed:
            if not self._wake.wait(timeout=WORKER_IDLE_S):
                with self._lock:
                    if not self._pending:
                        self._worker = None
                        return
            self._wake.clear()
            while not self._closed:
                with self._lock:  # every face waiting, in one pass
                    if not self._pending:
                        break
                    keys, crops = list(self._pending), np.stack(list(self._pending.values()))
                    self._pending.clear()
                try:
                    heats = self._gradcam(crops)
                except Exception:  # noqa: BLE001 - a failed map must never end the stream; drawn without
                    continue
                made = time.monotonic()
                with self._lock:
                    for key, heat in zip(keys, heats):
                        if key in self._asked:  # still followed
                            self._maps[key] = (heat, made)
                self.maps_made += len(keys)

    def _gradcam(self, crops: np.ndarray) -> np.ndarray:
        """(N, 48, 48) maps of (N, 48, 48) crops, one compiled pass (`gradcam_batch`)."""
        from fer_core.inference.gradcam import gradcam_batch, gradcam_layer_for

        inner = self.classifier
        while not hasattr(inner, "models"):  # through a test-time augmentation wrapper
            inner = inner.classify
        model = inner.models[0]  # an ensemble's maps are its first model's
        heats, _ = gradcam_batch(model, crops, layer_name=gradcam_layer_for(model))
        return heats


def unit(raw: np.ndarray) -> np.ndarray:
    """A map scaled to [0, 1] (its least weight 0, its most 1; flat: all 0)."""
    heat = np.asarray(raw, dtype=np.float32)
    heat = heat - heat.min()
    top = float(heat.max())
    return heat / top if top > 0 else heat


def blend_looks(frame_bgr: np.ndarray, boxes, maps, opacity: float = LOOK_OPACITY, rgb: bool = False) -> np.ndarray:
    """A copy of the frame (BGR, or RGB with `rgb`) with each map (None: none yet) coloured (blue
    least weight, red most: `fer_core.explain.colour_key`) and blended into its box; pixels
    outside every box unchanged. A map is drawn as the crop saw the face, unturned (where the crop
    was levelled on the eyes, it leans by the face's tilt)."""
    import cv2

    out = frame_bgr.copy()
    height, width = out.shape[:2]
    for (x, y, w, h), heat in zip(boxes, maps):
        if heat is None:
            continue
        x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
        if x1 <= x0 or y1 <= y0:
            continue
        grown = cv2.resize(np.asarray(heat, np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        grown = grown[y0 - y : y1 - y, x0 - x : x1 - x]
        coloured = cv2.applyColorMap(np.clip(grown * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
        coloured = coloured[..., ::-1] if rgb else coloured
        region = out[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = cv2.addWeighted(coloured, opacity, region, 1 - opacity, 0)
    return out
