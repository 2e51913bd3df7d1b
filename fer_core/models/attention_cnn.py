"""CNN with Squeeze-and-Excitation channel attention and the paper's spatial softmax attention."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from fer_core.errors import FerError
from fer_core.models import register_model
from fer_core.models.layers import SpatialSoftmaxAttention, SqueezeExcitation


def narrow_attention_cnn(source: keras.Model, target: keras.Model) -> None:
    """Warm-start `target`, a narrower attention_cnn (fewer filters a block), from a trained `source`
    by channel pruning ("network slimming", Liu et al. 2017): each conv keeps the channels whose
    BatchNorm scales are largest, every layer reading them (the next conv, the SE block, the
    attention's 1x1 projections, the dense layer) keeps the matching inputs, and each SE block keeps
    the hidden units that move its gates most. A pruned channel whose scale and shift are zero
    outputs zero everywhere, so dropping only such channels leaves the model's output unchanged.

    Raises:
        FerError: the two differ in more than their widths (blocks, convs a block, dense units).
    """
    convs = _conv_names(source)
    if (
        convs != _conv_names(target)
        or source.get_layer("dense").units != target.get_layer("dense").units
        or any(
            target.get_layer(conv).filters > source.get_layer(conv).filters
            for names in convs.values()
            for conv, _bn in names
        )
        or any(
            target.get_layer(f"{block}_se").squeeze.units > source.get_layer(f"{block}_se").squeeze.units
            for block in convs
        )
    ):
        raise FerError(
            "a narrower attention_cnn is warm-started only from a wider one with the same blocks, "
            "convs a block and dense units (and no wider SE blocks)"
        )
    kept = np.arange(source.inputs[0].shape[-1])  # the input's channels: all of them
    for block, names in convs.items():
        for conv_name, bn_name in names:
            kernel = source.get_layer(conv_name).get_weights()[0][:, :, kept, :]
            gamma, beta, mean, variance = source.get_layer(bn_name).get_weights()
            width = target.get_layer(conv_name).filters
            kept = np.sort(np.argsort(-np.abs(gamma), kind="stable")[:width])
            _assign(target.get_layer(conv_name), [kernel[..., kept]])
            _assign(target.get_layer(bn_name), [w[kept] for w in (gamma, beta, mean, variance)])
        se_source, se_target = source.get_layer(f"{block}_se"), target.get_layer(f"{block}_se")
        squeeze_kernel, squeeze_bias = se_source.squeeze.get_weights()
        excite_kernel, excite_bias = se_source.excite.get_weights()
        squeeze_kernel, excite_kernel = squeeze_kernel[kept], excite_kernel[:, kept]
        # A hidden unit matters as much as it is fed and as much as it moves the kept gates.
        influence = np.abs(squeeze_kernel).sum(axis=0) * np.abs(excite_kernel).sum(axis=1)
        hidden = np.sort(np.argsort(-influence, kind="stable")[: se_target.squeeze.units])
        _assign(se_target.squeeze, [squeeze_kernel[:, hidden], squeeze_bias[hidden]])
        _assign(se_target.excite, [excite_kernel[hidden], excite_bias[kept]])
    attention_source, attention_target = source.get_layer("spatial_attention"), target.get_layer("spatial_attention")
    for projection in ("query", "key"):
        kernel, bias = getattr(attention_source, projection).get_weights()
        _assign(getattr(attention_target, projection), [kernel[:, :, kept][..., kept], bias[kept]])
    kernel, bias = source.get_layer("dense").get_weights()
    _assign(target.get_layer("dense"), [kernel[kept], bias])
    for name in ("dense_bn", "probabilities"):
        _assign(target.get_layer(name), source.get_layer(name).get_weights())


def _conv_names(model: keras.Model) -> dict[str, list[tuple[str, str]]]:
    """{block: [(conv layer, its BatchNorm layer), ...]} in order."""
    blocks: dict[str, list[tuple[str, str]]] = {}
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D) and layer.name.startswith("block"):
            block, conv = layer.name.split("_")
            blocks.setdefault(block, []).append((layer.name, f"{block}_bn{conv.removeprefix('conv')}"))
    return blocks


def _assign(layer, weights) -> None:
    layer.set_weights([np.asarray(w).astype(v.dtype) for w, v in zip(weights, layer.get_weights())])


@register_model(
    "attention_cnn",
    description="SE conv blocks 64/128/256, then §4.1 spatial softmax attention pooling at 12x12",
    gradcam_layer="block3_se",
    attention_layer="spatial_attention",
    narrow=narrow_attention_cnn,
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
