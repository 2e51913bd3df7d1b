"""The inference wing: faces in, probabilities out.

Modules: `detectors` (face detectors by name: RetinaFace, BlazeFace, Haar), `faces` (which faces, crops,
drawing, the one `Face` type), `classifier` (the fast `Classifier`, `classify_images`: the one
pipeline from pictures to faces), `tta` (test-time augmentation), `onnx_engine` + `onnx_graph` (the ONNX Runtime
path and the graph writer), `options` (the checks of detector, TTA, min_face and every), `tracking`
(faces followed across frames), `video` (video files), `live` (smoother, per-viewer processor,
timeline), `gradcam` and `looks` (where the model looks, on one face and over moving pictures). Shared by
`fer-core predict`, evaluation, the Predict, Explain and Live pages. This face re-exports what
callers use; `live` is imported by name (only the Live page and the bench need it).
"""

from fer_core.inference.classifier import ENGINES, LARGE_BATCH, Classifier, classify_image, classify_images
from fer_core.inference.detectors import DEFAULT_DETECTOR, DETECTORS, Detection, make_detector
from fer_core.inference.faces import (
    FACE_CROP_MAX_SIDE,
    Face,
    crop_face,
    draw_boxes,
    draw_faces,
    face_crop,
    find_faces,
    to_face,
)
from fer_core.inference.tta import TTA_MODES, ZOOM_CROPS, tta_mode, tta_views, with_tta

__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "Detection",
    "ENGINES",
    "FACE_CROP_MAX_SIDE",
    "LARGE_BATCH",
    "TTA_MODES",
    "ZOOM_CROPS",
    "Classifier",
    "Face",
    "make_detector",
    "classify_image",
    "classify_images",
    "crop_face",
    "draw_boxes",
    "draw_faces",
    "face_crop",
    "find_faces",
    "to_face",
    "tta_mode",
    "tta_views",
    "with_tta",
]
