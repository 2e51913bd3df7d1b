"""The inference wing: faces in, probabilities out.

Modules: `faces` (Haar detection, crops, drawing), `classifier` (the fast `Classifier`,
`classify_image`), `tta` (test-time augmentation), `onnx_engine` + `onnx_graph` (the ONNX Runtime
path and the graph writer), `live` (tracker, smoother, per-viewer processor, timeline). Shared by
`fer-core predict`, evaluation, the Predict, Explain and Live pages. This face re-exports what
callers use; `live` is imported by name (only the Live page and the bench need it).
"""

from fer_core.inference.classifier import ENGINES, LARGE_BATCH, Classifier, classify_image
from fer_core.inference.faces import (
    FACE_CROP_MAX_SIDE,
    Face,
    FaceDetector,
    crop_face,
    draw_faces,
    find_faces,
    main_face,
    to_face,
)
from fer_core.inference.tta import TTA_MODES, ZOOM_CROPS, tta_mode, tta_views, with_tta

__all__ = [
    "ENGINES",
    "FACE_CROP_MAX_SIDE",
    "LARGE_BATCH",
    "TTA_MODES",
    "ZOOM_CROPS",
    "Classifier",
    "Face",
    "FaceDetector",
    "classify_image",
    "crop_face",
    "draw_faces",
    "find_faces",
    "main_face",
    "to_face",
    "tta_mode",
    "tta_views",
    "with_tta",
]
