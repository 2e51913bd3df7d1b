"""CNN with Squeeze-and-Excitation channel attention and the paper's spatial softmax attention."""

from __future__ import annotations

import keras
from keras import layers

from fer_core.models import register_model
from fer_core.models.layers import SpatialSoftmaxAttention, SqueezeExcitation


@register_model(
    "attention_cnn",
    description="SE conv blocks 64/128/256, then §4.1 spatial softmax attention pooling at 12x12",
    gradcam_layer="block3_se",
    attention_layer="spatial_attention",
)
def attention_cnn(
    input_shape, num_classes, filters=(64, 128, 256), convs_per_block=2, se_ratio=8, dense_units=256, dropout=0.25
) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = layers.Rescaling(1.0 / 255, name="scale")(inputs)
    last = len(filters)
    for i, width in enumerate(filters, start=1):
        for j in range(1, convs_per_block + 1):
            x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"block{i}_conv{j}")(x)
            x = layers.BatchNormalization(name=f"block{i}_bn{j}")(x)
            x = layers.Activation("relu", name=f"block{i}_relu{j}")(x)
        x = SqueezeExcitation(se_ratio, name=f"block{i}_se")(x)
        # The last block keeps its resolution (12x12 for 48x48 input) so the attention map is
        # fine enough to draw over a face.
        if i < last:
            x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
            x = layers.Dropout(dropout, name=f"block{i}_dropout")(x)
    pooled, _attention_map = SpatialSoftmaxAttention(name="spatial_attention")(x)
    x = layers.Dropout(dropout, name="pooled_dropout")(pooled)
    x = layers.Dense(dense_units, activation="relu", name="dense")(x)
    x = layers.BatchNormalization(name="dense_bn")(x)
    x = layers.Dropout(dropout, name="dense_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="attention_cnn")


def attention_map_model(model: keras.Model, layer_name: str = "spatial_attention") -> keras.Model:
    """A model from the same input to (probabilities, attention map (B, H, W))."""
    _pooled, attention_map = model.get_layer(layer_name).output
    return keras.Model(model.inputs, [model.outputs[0], attention_map], name=f"{model.name}_with_attention")
