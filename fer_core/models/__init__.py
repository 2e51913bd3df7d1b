"""The model registry: `build_model(name, ...)`, `list_models()`, `get_spec(name)`.

A model is trainable from the CLI and dashboard, and covered by the registry-parametrized tests,
once its builder is registered (the `register_model` decorator), its name is in MODEL_NAMES and
its module in `load_families` (which checks the two agree). The names are known without Keras, so
a model's name is checked at once; the families (which import Keras, seconds) load on first use.

Modules: `cnn` (the paper's §3.3.1), `attention_cnn` (SE channel attention and the §4.1 spatial
softmax attention), `resnet50`, `vgg` (our vgg_fer), `layers` (the layers they share).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from fer_core import IMAGE_SIZE
from fer_core.errors import FerError

# The registered families' names, in the order users see.
MODEL_NAMES: tuple[str, ...] = ("cnn", "attention_cnn", "resnet50", "vgg_fer")


@dataclass(frozen=True)
class ModelSpec:
    """What the project knows about a registered model family."""

    name: str
    builder: Callable
    description: str
    gradcam_layer: str  # the last spatial feature map, read by Grad-CAM
    attention_layer: str | None = None  # a layer whose second output is an attention map
    # narrow(source, target): warm-starts a narrower build of the family from a trained one
    # (channel pruning), so `--init` can start a smaller, faster model from a shipped one.
    narrow: Callable | None = None


_REGISTRY: dict[str, ModelSpec] = {}
_loaded = threading.Event()
_loading = threading.Lock()


def load_families() -> dict[str, ModelSpec]:
    """The registry, its families imported on the first call (their custom layers registered for
    deserialisation too); later calls, from any thread, wait for that one."""
    if not _loaded.is_set():
        with _loading:
            if not _loaded.is_set():
                from fer_core.backend import load_keras

                load_keras()  # before the families import keras: hides TensorFlow's start-up lines
                from fer_core.models import attention_cnn, cnn, resnet50, vgg  # noqa: F401

                if set(_REGISTRY) != set(MODEL_NAMES):
                    raise RuntimeError(f"MODEL_NAMES {MODEL_NAMES} and the registered {tuple(_REGISTRY)} differ")
                _loaded.set()
    return _REGISTRY


def register_model(
    name: str,
    description: str,
    gradcam_layer: str,
    attention_layer: str | None = None,
    narrow: Callable | None = None,
):
    """Class the decorated builder `fn(input_shape, num_classes, **hparams) -> keras.Model` as `name`."""

    def decorate(builder: Callable) -> Callable:
        _REGISTRY[name] = ModelSpec(name, builder, description, gradcam_layer, attention_layer, narrow)
        return builder

    return decorate


def list_models() -> list[str]:
    return list(MODEL_NAMES)


def check_model_name(name: str) -> str:
    """`name` when it is a registered model's, without loading Keras.

    Raises:
        FerError: an unknown name, with the valid ones.
    """
    if name not in MODEL_NAMES:
        raise FerError(f"unknown model {name!r}; valid models: {', '.join(MODEL_NAMES)}")
    return name


def get_spec(name: str) -> ModelSpec:
    return load_families()[check_model_name(name)]


def build_model(name: str, *, num_classes: int, input_shape=(IMAGE_SIZE, IMAGE_SIZE, 1), **hparams):
    """Build a registered model taking raw 0..255 grayscale and returning `num_classes`
    probabilities (the dataset's classes: no count is assumed).

    Raises:
        FerError: unknown name, or hyperparameters the builder does not take.
    """
    spec = get_spec(name)
    try:
        return spec.builder(input_shape=tuple(input_shape), num_classes=num_classes, **hparams)
    except TypeError as exc:
        raise FerError(f"model {name!r} does not accept these hyperparameters: {exc}. Received: {hparams}") from None


__all__ = [
    "MODEL_NAMES",
    "ModelSpec",
    "build_model",
    "check_model_name",
    "get_spec",
    "list_models",
    "load_families",
    "register_model",
]
