"""The paper's regular CNN (§3.3.1), layer for layer."""

from __future__ import annotations

import keras
from keras import layers

from fer_core.models import register_model


@register_model(
    "cnn",
    description="Paper §3.3.1: conv 64/128/512 (3x3, BN, maxpool, dropout 0.25), dense 256, softmax",
    gradcam_layer="block3_conv",
)
def cnn(input_shape, num_classes, filters=(64, 128, 512), dense_units=256, dropout=0.25) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name="pixels")
    # Preprocessing inside the model: a saved model takes raw 0..255 pixels.
    x = layers.Rescaling(1.0 / 255, name="scale")(inputs)
    for i, width in enumerate(filters, start=1):
        x = layers.Conv2D(width, 3, padding="same", activation="relu", name=f"block{i}_conv")(x)
        x = layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        x = layers.Dropout(dropout, name=f"block{i}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense_units, activation="relu", name="dense")(x)
    x = layers.BatchNormalization(name="dense_bn")(x)
    x = layers.Dropout(dropout, name="dense_dropout")(x)
    # float32 output keeps probabilities exact under a mixed-precision policy.
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="cnn")
