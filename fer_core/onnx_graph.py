"""Write a trained chain of layers straight to an ONNX graph, laid out the way ONNX Runtime runs fastest.

tf2onnx (keras' `model.export(format="onnx")`) converts the TensorFlow graph: channels-last
tensors, a transpose pair around every squeeze-and-excitation gate and a softmax over a middle
axis, each a reorder out of and back into ONNX Runtime's blocked conv layout. Measured on the
2-core AVX512 CPU with training paused, one face through the attention_cnn: see `fer-core bench`
and the README's performance section. This module writes the same computation in channels-first
order from the layers' weights instead:

- every batch normalization that follows a linear conv or dense layer is folded into its weights,
  and the input's 1/255 scaling into the first conv;
- a squeeze-and-excitation gate followed by max pooling multiplies after the pooling, on a
  quarter of the values (exact: the gate is a sigmoid, positive, and rounding is monotonic, so
  max(g*x) == g*max(x));
- the spatial softmax attention runs over the last axis of (batch, channels, positions).

Only the layer kinds the registry's chain models use are written; anything else raises
UnsupportedLayer and the caller exports through tf2onnx. The result is always checked against
`model(x)` by the caller before it is used.
"""

from __future__ import annotations

import numpy as np

# Bump when the graph written for the same model changes, so cached files are rebuilt.
GRAPH_VERSION = 1
_OPSET = 17


class UnsupportedLayer(ValueError):
    """The model holds a layer (or an arrangement of layers) this writer does not translate."""


def chain_to_onnx(model):
    """The ONNX model (batch, 48, 48, 1) float32 pixels → probabilities for a Keras model whose layers
    form one chain, each feeding the next. Raises UnsupportedLayer otherwise."""
    import onnx
    from onnx import TensorProto, helper

    from fer_core.models.layers import SpatialSoftmaxAttention, SqueezeExcitation

    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    _check_chain(model, layers)
    graph = _Graph()
    input_shape = model.inputs[0].shape  # (None, H, W, C)
    if len(input_shape) != 4:
        raise UnsupportedLayer("only image inputs (batch, height, width, channels) are written")
    x = graph.node("Transpose", ["pixels"], perm=[0, 3, 1, 2])  # to channels-first
    pending_scale = 1.0  # a Rescaling waiting to be folded into the next conv
    i = 0
    while i < len(layers):
        layer, kind = layers[i], type(layers[i]).__name__
        following = layers[i + 1] if i + 1 < len(layers) else None
        if kind == "Dropout":
            pass
        elif kind == "Rescaling":
            if np.any(np.asarray(layer.offset) != 0) or np.size(layer.scale) != 1:
                raise UnsupportedLayer("a Rescaling with an offset or per-channel scale")
            pending_scale *= float(np.asarray(layer.scale))
            if not _is(following, "Conv2D"):
                x, pending_scale = graph.node("Mul", [x, graph.constant(np.float32(pending_scale))]), 1.0
        elif kind == "Conv2D":
            kernel, bias = _conv_weights(layer)
            kernel = kernel * pending_scale
            pending_scale = 1.0
            if _is(following, "BatchNormalization") and layer.activation.__name__ == "linear":
                kernel, bias = _fold_batch_norm(following, kernel, bias, channel_axis=0)
                i += 1
            x = graph.node(
                "Conv",
                [x, graph.constant(kernel), graph.constant(bias)],
                kernel_shape=list(layer.kernel_size),
                pads=_same_pads(layer),
            )
            x = graph.activation(x, layer.activation, axis=1)
        elif kind == "Dense":
            if _rank(layer) != 2:
                raise UnsupportedLayer(f"dense {layer.name} on a feature map")
            kernel, bias = _dense_weights(layer)
            if _is(following, "BatchNormalization") and layer.activation.__name__ == "linear":
                kernel, bias = _fold_batch_norm(following, kernel, bias, channel_axis=1)
                i += 1
            x = graph.node("Gemm", [x, graph.constant(kernel), graph.constant(bias)])
            x = graph.activation(x, layer.activation, axis=-1)
        elif kind == "BatchNormalization":
            scale, shift = _batch_norm_affine(layer)
            if _rank(layer) == 4:  # ONNX Runtime runs this one inside its blocked conv layout
                channels = len(scale)
                x = graph.node(
                    "BatchNormalization",
                    [
                        x,
                        *map(
                            graph.constant,
                            (scale, shift, np.zeros(channels, np.float32), np.ones(channels, np.float32)),
                        ),
                    ],
                    epsilon=0.0,
                )
            else:
                x = graph.node("Add", [graph.node("Mul", [x, graph.constant(scale)]), graph.constant(shift)])
        elif kind == "Activation":
            x = graph.activation(x, layer.activation, axis=1 if _rank(layer) == 4 else -1)
        elif kind == "MaxPooling2D":
            x = graph.node("MaxPool", [x], **_pool_attributes(layer))
        elif kind == "Flatten":
            # Keras flattens channels-last: back to (batch, H, W, C) first, a few thousand values.
            x = graph.node("Flatten", [graph.node("Transpose", [x], perm=[0, 2, 3, 1])], axis=1)
        elif kind == "GlobalAveragePooling2D":
            x = graph.node("Flatten", [graph.node("GlobalAveragePool", [x])], axis=1)
        elif isinstance(layer, SqueezeExcitation):
            gate = graph.node("Flatten", [graph.node("GlobalAveragePool", [x])], axis=1)
            for dense in (layer.squeeze, layer.excite):
                kernel, bias = _dense_weights(dense)
                gate = graph.activation(
                    graph.node("Gemm", [gate, graph.constant(kernel), graph.constant(bias)]), dense.activation, axis=-1
                )
            if layer.excite.activation.__name__ != "sigmoid":
                raise UnsupportedLayer("a squeeze-and-excitation gate that is not a sigmoid")
            gate = graph.node("Unsqueeze", [gate, graph.constant(np.array([2, 3], np.int64))])
            if _is(following, "MaxPooling2D"):
                x = graph.node("MaxPool", [x], **_pool_attributes(following))
                i += 1
            x = graph.node("Mul", [x, gate])
        elif isinstance(layer, SpatialSoftmaxAttention):
            query = graph.node("Conv", [x, *map(graph.constant, _conv_weights(layer.query))], kernel_shape=[1, 1])
            key = graph.node("Conv", [x, *map(graph.constant, _conv_weights(layer.key))], kernel_shape=[1, 1])
            positions_last = graph.constant(np.array([0, 0, -1], np.int64))  # (batch, C, H*W)
            scores = graph.node("Reshape", [graph.node("Mul", [query, key]), positions_last])
            weights = graph.node("Softmax", [scores], axis=-1)
            values = graph.node("Reshape", [x, positions_last])
            x = graph.node(
                "ReduceSum",
                [graph.node("Mul", [weights, values]), graph.constant(np.array([-1], np.int64))],
                keepdims=0,
            )
        else:
            raise UnsupportedLayer(f"layer {layer.name} ({kind})")
        i += 1
    graph.rename_output(x, "probabilities")
    channels = int(input_shape[-1])
    onnx_model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            model.name,
            [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", *input_shape[1:3], channels])],
            [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", model.outputs[0].shape[-1]])],
            graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", _OPSET)],
        producer_name="fer_core.onnx_graph",
    )
    onnx.checker.check_model(onnx_model)
    return onnx_model


class _Graph:
    """Nodes and constants, each output named in order."""

    def __init__(self):
        self.nodes, self.initializers = [], []

    def _name(self, stem: str) -> str:
        return f"{stem}_{len(self.nodes) + len(self.initializers)}"

    def constant(self, value) -> str:
        from onnx import numpy_helper

        name = self._name("c")
        array = np.asarray(value)
        self.initializers.append(numpy_helper.from_array(array.astype(array.dtype), name))
        return name

    def node(self, op: str, inputs: list[str], **attributes) -> str:
        from onnx import helper

        output = self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], **attributes))
        return output

    def activation(self, x: str, function, axis: int) -> str:
        name = function.__name__
        if name == "linear":
            return x
        if name in ("relu", "sigmoid", "tanh"):
            return self.node(name.capitalize(), [x])
        if name == "softmax":
            return self.node("Softmax", [x], axis=axis)
        raise UnsupportedLayer(f"activation {name}")

    def rename_output(self, name: str, new: str) -> None:
        node = next(n for n in self.nodes if name in n.output)
        node.output[list(node.output).index(name)] = new


def _is(layer, kind: str) -> bool:
    return layer is not None and type(layer).__name__ == kind


def _rank(layer) -> int:
    return len(layer.input.shape)


def _check_chain(model, layers) -> None:
    """Each layer must read the previous one's (first) output and nothing else."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UnsupportedLayer("more than one input or output")
    previous = model.inputs[0]
    for layer in layers:
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        if len(inputs) != 1 or inputs[0] is not previous:
            raise UnsupportedLayer(f"layer {layer.name} is not fed by the layer before it alone")
        output = layer.output
        previous = output[0] if isinstance(output, (list, tuple)) else output
    if previous is not model.outputs[0]:
        raise UnsupportedLayer("the last layer is not the model's output")


def _float32(layer, weights) -> list[np.ndarray]:
    if getattr(layer, "dtype_policy", None) is not None and layer.dtype_policy.compute_dtype != "float32":
        raise UnsupportedLayer(f"layer {layer.name} computes in {layer.dtype_policy.compute_dtype}")
    return [np.asarray(w, dtype=np.float32) for w in weights]


def _conv_weights(layer) -> tuple[np.ndarray, np.ndarray]:
    """(out, in, kh, kw) kernel and bias of a Conv2D (keras stores (kh, kw, in, out))."""
    if tuple(layer.strides) != (1, 1) or tuple(layer.dilation_rate) != (1, 1) or layer.groups != 1:
        raise UnsupportedLayer(f"conv {layer.name}: strides, dilation or groups")
    if layer.data_format != "channels_last":
        raise UnsupportedLayer(f"conv {layer.name}: channels_first")
    weights = _float32(layer, layer.get_weights())
    kernel = weights[0].transpose(3, 2, 0, 1)
    bias = weights[1] if layer.use_bias else np.zeros(kernel.shape[0], np.float32)
    return kernel, bias


def _dense_weights(layer) -> tuple[np.ndarray, np.ndarray]:
    weights = _float32(layer, layer.get_weights())
    bias = weights[1] if layer.use_bias else np.zeros(weights[0].shape[1], np.float32)
    return weights[0], bias


def _batch_norm_affine(layer) -> tuple[np.ndarray, np.ndarray]:
    """BatchNormalization at inference as y = x * scale + shift, per channel."""
    if layer.axis not in (-1, _rank(layer) - 1):
        raise UnsupportedLayer(f"batch normalization {layer.name} over axis {layer.axis}")
    weights = {w.path.rsplit("/", 1)[-1]: np.asarray(w.numpy(), np.float64) for w in layer.weights}
    channels = weights["moving_mean"].shape[0]
    gamma = weights.get("gamma", np.ones(channels))
    beta = weights.get("beta", np.zeros(channels))
    scale = gamma / np.sqrt(weights["moving_variance"] + layer.epsilon)
    return scale.astype(np.float32), (beta - weights["moving_mean"] * scale).astype(np.float32)


def _fold_batch_norm(batch_norm, kernel, bias, channel_axis: int) -> tuple[np.ndarray, np.ndarray]:
    scale, shift = _batch_norm_affine(batch_norm)
    shape = [1] * kernel.ndim
    shape[channel_axis] = -1
    return (kernel * scale.reshape(shape)).astype(np.float32), (bias * scale + shift).astype(np.float32)


def _same_pads(layer) -> list[int]:
    if layer.padding == "valid":
        return [0, 0, 0, 0]
    height, width = layer.kernel_size
    if height % 2 == 0 or width % 2 == 0:
        raise UnsupportedLayer(f"conv {layer.name}: 'same' padding of an even kernel")
    return [height // 2, width // 2, height // 2, width // 2]


def _pool_attributes(layer) -> dict:
    if layer.padding != "valid" or layer.data_format != "channels_last":
        raise UnsupportedLayer(f"pooling {layer.name}: padding or data format")
    return {"kernel_shape": list(layer.pool_size), "strides": list(layer.strides)}
