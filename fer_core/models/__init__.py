"""The model registry: `build_model(name, ...)`, `list_models()`, `get_spec(name)`.

Registering a builder (the `register_model` decorator) is all it takes for a model to be
trainable from the CLI and dashboard and to be covered by the registry-parametrized tests.

Modules: `cnn` (the paper's §3.3.1), `attention_cnn` (SE channel attention and the §4.1 spatial
softmax attention), `resnet50`, `vgg` (our vgg_fer), `layers` (the layers they share).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from fer_core import IMAGE_SIZE
from fer_core.backend import load_keras
from fer_core.errors import FerError

load_keras()  # before the model families import keras: hides TensorFlow's start-up lines


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
    return list(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise FerError(f"unknown model {name!r}; valid models: {', '.join(_REGISTRY)}") from None


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


# Importing the families fills the registry; the order here is the order users see.
from fer_core.models import cnn, attention_cnn, resnet50, vgg  # noqa: E402,F401

__all__ = ["ModelSpec", "build_model", "get_spec", "list_models", "register_model"]
