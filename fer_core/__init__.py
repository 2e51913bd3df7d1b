"""fer_core: FER2013 data, models, training, evaluation, explanation and inference.

The dashboard and the `fer-core` CLI are thin layers over this package. It never imports
streamlit, and it imports Keras lazily so that data-only commands start fast.
"""

from fer_core.errors import FerError

__version__ = "0.1.0"

# FER2013's own label order; every array of labels or probabilities in the project uses it.
CLASS_NAMES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SIZE = 48

# FER2013's Usage values, in the order the dataset defines them.
FER_SPLITS: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")


def __getattr__(name: str):
    # `from fer_core import Recognizer` without importing the recognizer (and numpy) for every
    # command that never classifies a face.
    if name == "Recognizer":
        from fer_core.recognizer import Recognizer

        return Recognizer
    raise AttributeError(f"module 'fer_core' has no attribute {name!r}")


__all__ = ["CLASS_NAMES", "NUM_CLASSES", "IMAGE_SIZE", "FER_SPLITS", "FerError", "Recognizer", "__version__"]
