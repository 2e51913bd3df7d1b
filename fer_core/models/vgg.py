"""A stronger model of our own: VGG-style stages of two 3x3 convolutions (cf. Khaireddin & Chen 2021)."""

from __future__ import annotations

import keras
from keras import layers

from fer_core.models import register_model


@register_model(
    "vgg_fer",
    description="VGG-style: four stages of two 3x3 convs 64/128/256/512 (BN, maxpool, dropout), dense 256",
    gradcam_layer="block4_relu2",
)
def vgg_fer(input_shape, num_classes, filters=(64, 128, 256, 512), dense_units=256, dropout=0.25) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = layers.Rescaling(1.0 / 255, name="scale")(inputs)
    for i, width in enumerate(filters, start=1):
        for j in (1, 2):
            # No bias: the batch normalization right after has its own shift.
            x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"block{i}_conv{j}")(x)
            x = layers.BatchNormalization(name=f"block{i}_bn{j}")(x)
            x = layers.Activation("relu", name=f"block{i}_relu{j}")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        x = layers.Dropout(dropout, name=f"block{i}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense_units, use_bias=False, name="dense")(x)
    x = layers.BatchNormalization(name="dense_bn")(x)
    x = layers.Activation("relu", name="dense_relu")(x)
    x = layers.Dropout(2 * dropout, name="dense_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="vgg_fer")
