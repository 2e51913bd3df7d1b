"""Test-time augmentation: a face's probabilities averaged over views of it."""

from __future__ import annotations

import numpy as np

from fer_core import IMAGE_SIZE
from fer_core.errors import FerError

# Test-time augmentation: the probabilities of a face averaged over views of it. "flip" adds the
# mirror image; "flip+zoom" also centre crops of 44 and 40 px scaled back to 48, and their mirrors
# (six views). Chosen on the Training selection slice, never on the reported split (accuracy
# alone / flip / flip+zoom): cnn 0.6409 / 0.6430 / 0.6520, attention_cnn 0.6054 / 0.6061 / 0.6214;
# one crop size alone or shifts of 2-3 px gained less (trained/RESULTS.md).
TTA_MODES = ("none", "flip", "flip+zoom")
ZOOM_CROPS = (44, 40)


def tta_mode(tta) -> str:
    """The TTA mode named by `tta`: one of TTA_MODES, or a bool (False = "none", True = "flip"),
    which is how metrics files before "flip+zoom" stored it."""
    if tta is None or tta is False:
        return "none"
    if tta is True:
        return "flip"
    if tta in TTA_MODES:
        return tta
    raise FerError(f"unknown TTA {tta!r}; choose one of {', '.join(TTA_MODES)}")


def tta_views(faces: np.ndarray, tta) -> list[np.ndarray]:
    """The views of (N, 48, 48, 1) faces that `tta` averages over, the faces themselves first."""
    mode = tta_mode(tta)
    views = [faces]
    if mode == "flip+zoom":
        import cv2

        for crop in ZOOM_CROPS:
            margin = (IMAGE_SIZE - crop) // 2
            zoomed = [
                cv2.resize(
                    np.ascontiguousarray(face[margin : margin + crop, margin : margin + crop, 0]),
                    (IMAGE_SIZE, IMAGE_SIZE),
                )
                for face in faces
            ]
            views.append(np.stack(zoomed)[..., None] if zoomed else faces[:0])
    if mode != "none":
        views += [np.ascontiguousarray(v[:, :, ::-1]) for v in list(views)]
    return views


def with_tta(classify, tta):
    """`classify` (faces → probabilities) averaging over the `tta` views of each face."""
    return classify if tta_mode(tta) == "none" else _WithViews(classify, tta)


class _WithViews:
    """A classifier averaging over TTA views; its `classes` are the wrapped classifier's, read
    when asked (a model whose classes are unnamed is refused only where a label is named)."""

    def __init__(self, classify, tta):
        self.classify, self.tta = classify, tta

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        x = np.asarray(faces)
        if x.ndim == 3:
            x = x[..., None]
        return np.mean([np.asarray(self.classify(v), dtype=np.float32) for v in tta_views(x, self.tta)], axis=0)

    @property
    def classes(self):
        return self.classify.classes
