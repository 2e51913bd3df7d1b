"""ResNet50 from keras.applications, adapted to 48x48 grayscale."""

from __future__ import annotations

import os
from pathlib import Path

import keras
from keras import layers

from fer_core.errors import FerError
from fer_core.models import register_model

# keras.applications' "caffe" preprocessing for ImageNet weights: BGR means, no scaling.
_IMAGENET_BGR_MEANS = (103.939, 116.779, 123.68)


@register_model(
    "resnet50",
    description="keras.applications.ResNet50 on grayscale replicated to 3 channels, upscaled inside the model",
    gradcam_layer="conv5_block3_out",
)
def resnet50(input_shape, num_classes, image_size=64, weights=None, dropout=0.25) -> keras.Model:
    """Args: image_size: the side the 48x48 face is resized to inside the model (>= 32).
    weights: None (from scratch), "imagenet" (needs the cached download) or a local weights file.
    """
    if image_size < 32:
        raise FerError(f"resnet50 needs image_size >= 32. Received: image_size={image_size}")
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = layers.Resizing(image_size, image_size, interpolation="bilinear", name="upscale")(inputs)
    if input_shape[-1] == 1:
        x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
    if weights == "imagenet":
        x = layers.Normalization(mean=_IMAGENET_BGR_MEANS, variance=(1.0, 1.0, 1.0), name="imagenet_norm")(x)
    else:
        x = layers.Rescaling(1.0 / 255, name="scale")(x)
    backbone = keras.applications.ResNet50(
        include_top=False, weights=None, input_tensor=x, input_shape=(image_size, image_size, 3)
    )
    if weights is not None:
        _load_backbone_weights(backbone, weights)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(backbone.output)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="resnet50")


def _load_backbone_weights(backbone: keras.Model, weights: str) -> None:
    if weights == "imagenet":
        # keras caches downloads in ~/.keras/models; offline, only a cached file works.
        name = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
        cached = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models" / name
        if not cached.exists():
            raise FerError(
                f"ImageNet weights for resnet50 are not available offline (looked for {cached}); "
                "download them once with network access or pass weights=PATH to a local .h5 file"
            )
        weights = str(cached)
    path = Path(weights)
    if not path.is_file():
        raise FerError(f"resnet50 weights file not found. Received: weights={weights}")
    try:
        backbone.load_weights(str(path), skip_mismatch=False)
    except Exception as exc:  # h5 format or shape mismatches surface as many types
        raise FerError(f"cannot load resnet50 weights from {path}: {str(exc).splitlines()[0][:200]}") from None
