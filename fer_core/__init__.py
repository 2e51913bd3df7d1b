"""fer_core: FER2013 data, models, training, evaluation, explanation and inference.

The dashboard and the `fer-core` CLI are thin layers over this package. It never imports
streamlit, and it imports Keras lazily so that data-only commands start fast.
"""

from fer_core.errors import FerError

__version__ = "0.1.0"

# FER2013's classes in its label order: what the FER2013 loaders (its CSV, its class folders) give
# a dataset, and what a model file without records is taken to be only when it has seven outputs.
# Every other dataset brings its own classes, and models, metrics and tables take theirs.
CLASS_NAMES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
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


__all__ = ["CLASS_NAMES", "IMAGE_SIZE", "FER_SPLITS", "FerError", "Recognizer", "__version__"]
