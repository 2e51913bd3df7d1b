"""Custom layers, registered so `.keras` files holding them load with safe_mode on."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="fer_core")
class SqueezeExcitation(layers.Layer):
    """Channel attention (Hu et al. 2018): reweight channels by a gate computed from their means."""

    def __init__(self, ratio: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.ratio = ratio

    def build(self, input_shape):
        channels = int(input_shape[-1])
        hidden = max(channels // self.ratio, 4)
        self.squeeze = layers.Dense(hidden, activation="relu", name="squeeze", dtype=self.dtype_policy)
        self.excite = layers.Dense(channels, activation="sigmoid", name="excite", dtype=self.dtype_policy)
        self.squeeze.build((input_shape[0], channels))
        self.excite.build((input_shape[0], hidden))

    def call(self, inputs):
        means = ops.mean(inputs, axis=(1, 2))
        gate = self.excite(self.squeeze(means))
        return inputs * gate[:, None, None, :]

    def get_config(self):
        return {**super().get_config(), "ratio": self.ratio}


@keras.saving.register_keras_serializable(package="fer_core")
class SpatialSoftmaxAttention(layers.Layer):
    """The paper's §4.1 attention: A[i,j,k] = softmax over positions (i,j) of Q[i,j,k]·K[i,j,k].

    Q and K are learned 1x1 projections of the feature map F. The layer returns the attention-
    pooled features sum_ij A[i,j,k]·F[i,j,k] (shape (batch, C)) and the channel-mean map of A
    (shape (batch, H, W)), which the explain page draws over the face.
    """

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.query = layers.Conv2D(channels, 1, name="query", dtype=self.dtype_policy)
        self.key = layers.Conv2D(channels, 1, name="key", dtype=self.dtype_policy)
        self.query.build(input_shape)
        self.key.build(input_shape)

    def call(self, features):
        shape = ops.shape(features)
        scores = self.query(features) * self.key(features)  # (B, H, W, C)
        flat = ops.reshape(scores, (shape[0], shape[1] * shape[2], shape[3]))
        # Softmax in float32 even under mixed precision: exp over 144 positions overflows bf16.
        weights = ops.softmax(ops.cast(flat, "float32"), axis=1)
        values = ops.reshape(ops.cast(features, "float32"), (shape[0], shape[1] * shape[2], shape[3]))
        pooled = ops.sum(weights * values, axis=1)
        attention_map = ops.reshape(ops.mean(weights, axis=-1), (shape[0], shape[1], shape[2]))
        return ops.cast(pooled, self.compute_dtype), attention_map

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1]), (input_shape[0], input_shape[1], input_shape[2])
