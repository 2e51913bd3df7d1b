"""Write a trained Keras model straight to an ONNX graph, laid out the way ONNX Runtime runs fastest.

tf2onnx (keras' `model.export(format="onnx")`) converts the TensorFlow graph: channels-last
tensors, a transpose pair around every squeeze-and-excitation gate and a softmax over a middle
axis, each a reorder out of and back into ONNX Runtime's blocked conv layout; and its ResNet50
disagrees with the model. This module writes the same computation in channels-first order from
the layers' weights instead, walking the functional graph layer by layer (measured against
tf2onnx's graphs by `tools/onnx_writers.py`; numbers in docs/performance.md):

- every batch normalization that alone reads a linear conv or dense layer is folded into its
  weights, and the input's 1/255 scaling into the conv that alone reads it;
- a squeeze-and-excitation gate read by max pooling alone multiplies after the pooling, on a
  quarter of the values (exact: the gate is a sigmoid, positive, and rounding is monotonic, so
  max(g*x) == g*max(x));
- the spatial softmax attention runs over the last axis of (batch, channels, positions), and its
  map (the weights' mean over channels, what Explain draws) is the graph's second output,
  `attention` (batch, H, W), so Live and Video read it from the same forward pass.

Only the layer kinds the registry's models use are written (ResNet50's residual adds, strided
convs, zero padding and bilinear upscaling included); anything else raises UnsupportedLayer and
the caller exports through tf2onnx. The caller checks the result against `model(x)` before using it.
"""

from __future__ import annotations

import numpy as np

# Bump when the graph written for the same model changes, so cached files are rebuilt.
GRAPH_VERSION = 2
_OPSET = 18  # Resize by named axes


class UnsupportedLayer(ValueError):
    """The model holds a layer (or an arrangement of layers) this writer does not translate."""


def keras_to_onnx(model):
    """The ONNX model (batch, H, W, C) float32 pixels → probabilities for a functional Keras model of
    one input and one output built from the layer kinds below. Raises UnsupportedLayer otherwise."""
    import onnx
    from onnx import TensorProto, helper

    input_shape = model.inputs[0].shape  # (None, H, W, C)
    if len(model.inputs) != 1 or len(model.outputs) != 1 or len(input_shape) != 4:
        raise UnsupportedLayer("only one image input (batch, height, width, channels) and one output")
    graph = _Graph(model)
    graph.names[id(model.inputs[0])] = graph.node("Transpose", ["pixels"], perm=[0, 3, 1, 2])  # channels first
    for layer in _operations(model):
        if type(layer).__name__ != "InputLayer" and id(layer) not in graph.done:
            graph.write(layer)
    graph.nodes.append(helper.make_node("Identity", [graph.name_of(model.outputs[0])], ["probabilities"]))
    outputs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", model.outputs[0].shape[-1]])]
    if graph.attention is not None:
        value, height, width = graph.attention
        shape = graph.constant(np.array([0, height, width], np.int64))
        graph.nodes.append(helper.make_node("Reshape", [value, shape], ["attention"]))
        outputs.append(helper.make_tensor_value_info("attention", TensorProto.FLOAT, ["batch", height, width]))
    onnx_model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            model.name,
            [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", *input_shape[1:]])],
            outputs,
            graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", _OPSET)],
        producer_name="fer_core.onnx_graph",
    )
    onnx.checker.check_model(onnx_model)
    return onnx_model


class _Graph:
    """The ONNX nodes and constants written so far, and which ONNX value holds each Keras tensor."""

    def __init__(self, model):
        self.nodes, self.initializers = [], []
        self.names: dict[int, str] = {}  # id(KerasTensor) -> ONNX value name
        self.done: set[int] = set()  # ids of layers already written as part of an earlier one
        self.attention: tuple[str, int, int] | None = None  # a spatial attention map: (value, H, W)
        # Who reads each tensor: a fold or reordering is exact only where one layer alone does.
        self.readers: dict[int, list] = {}
        for layer in _operations(model):
            for tensor in _inputs(layer) if type(layer).__name__ != "InputLayer" else []:
                self.readers.setdefault(id(tensor), []).append(layer)
        for tensor in model.outputs:
            self.readers.setdefault(id(tensor), []).append(None)

    def _name(self, stem: str) -> str:
        return f"{stem}_{len(self.nodes) + len(self.initializers)}"

    def constant(self, value) -> str:
        from onnx import numpy_helper

        name = self._name("c")
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
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

    def name_of(self, tensor) -> str:
        if id(tensor) not in self.names:
            raise UnsupportedLayer("a layer reads a tensor no written layer produced")
        return self.names[id(tensor)]

    def only_reader(self, layer, kind: str):
        """The one layer reading `layer`'s output, if it is a `kind` and no other layer reads it."""
        readers = self.readers.get(id(_outputs(layer)[0]), [])
        if len(readers) == 1 and readers[0] is not None and type(readers[0]).__name__ == kind:
            return readers[0]
        return None

    def write(self, layer) -> None:
        """Write `layer` (and any layer folded into it), naming the ONNX value of its output."""
        kind = type(layer).__name__
        writer = _WRITERS.get(kind)
        if kind in _OWN_LAYERS and type(layer).__module__ != "fer_core.models.layers":
            writer = None  # another package's layer of the same name
        if writer is None:
            raise UnsupportedLayer(f"layer {layer.name} ({kind})")
        if len(_outputs(layer)) > 1 and any(self.readers.get(id(t)) for t in _outputs(layer)[1:]):
            raise UnsupportedLayer(f"layer {layer.name}: a second output is read")
        inputs = [self.name_of(tensor) for tensor in _inputs(layer)]
        written = writer(self, layer, inputs, len(_inputs(layer)[0].shape))
        # A writer returns the ONNX value, or it and the reader folded into it (whose output it is).
        x, produced = written if isinstance(written, tuple) else (written, layer)
        if produced is not layer:
            self.done.add(id(produced))
        self.names[id(_outputs(produced)[0])] = x

    # One writer per Keras layer type (the table `_WRITERS` below): (layer, its inputs' ONNX
    # values, the rank of its first input) -> the output's value, or (value, folded reader).

    def _dropout(self, layer, inputs, rank):
        return inputs[0]

    def _rescaling(self, layer, inputs, rank):
        if np.any(np.asarray(layer.offset) != 0) or np.size(layer.scale) != 1:
            raise UnsupportedLayer("a Rescaling with an offset or per-channel scale")
        conv = self.only_reader(layer, "Conv2D")
        if conv is not None:  # folded into the conv's kernel
            self.done.add(id(conv))
            return self._conv(conv, inputs[0], scale=float(np.asarray(layer.scale)))
        return self.node("Mul", [inputs[0], self.constant(np.float32(np.asarray(layer.scale)))])

    def _conv2d(self, layer, inputs, rank):
        return self._conv(layer, inputs[0])

    def _dense(self, layer, inputs, rank):
        if rank != 2:
            raise UnsupportedLayer(f"dense {layer.name} on a feature map")
        kernel, bias = _dense_weights(layer)
        produced = layer
        batch_norm = self.only_reader(layer, "BatchNormalization")
        if batch_norm is not None and layer.activation.__name__ == "linear":
            kernel, bias = _fold_batch_norm(batch_norm, kernel, bias, channel_axis=1)
            produced = batch_norm
        x = self.node("Gemm", [inputs[0], self.constant(kernel), self.constant(bias)])
        return self.activation(x, layer.activation, axis=-1), produced

    def _batch_normalization(self, layer, inputs, rank):
        scale, shift = _batch_norm_affine(layer)
        if rank == 4:  # ONNX Runtime runs this one inside its blocked conv layout
            zeros, ones = np.zeros_like(scale), np.ones_like(scale)
            constants = map(self.constant, (scale, shift, zeros, ones))
            return self.node("BatchNormalization", [inputs[0], *constants], epsilon=0.0)
        return self.node("Add", [self.node("Mul", [inputs[0], self.constant(scale)]), self.constant(shift)])

    def _activation(self, layer, inputs, rank):
        return self.activation(inputs[0], layer.activation, axis=1 if rank == 4 else -1)

    def _max_pooling2d(self, layer, inputs, rank):
        return self.node("MaxPool", inputs[:1], **_pool_attributes(layer))

    def _zero_padding2d(self, layer, inputs, rank):
        (top, bottom), (left, right) = layer.padding
        if layer.data_format != "channels_last":
            raise UnsupportedLayer(f"padding {layer.name}: channels_first")
        return self.node("Pad", [inputs[0], self.constant(np.array([0, 0, top, left, 0, 0, bottom, right], np.int64))])

    def _resizing(self, layer, inputs, rank):
        config = layer.get_config()
        if config["interpolation"] != "bilinear" or config["crop_to_aspect_ratio"] or config["pad_to_aspect_ratio"]:
            raise UnsupportedLayer(f"resizing {layer.name}: only plain bilinear")
        if config["antialias"] and (config["height"] < _inputs(layer)[0].shape[1]):
            raise UnsupportedLayer(f"resizing {layer.name}: antialiased downscaling")
        size = self.constant(np.array([config["height"], config["width"]], np.int64))
        # TensorFlow's resize samples at pixel centres: ONNX's "half_pixel".
        return self.node(
            "Resize", [inputs[0], "", "", size], axes=[2, 3], mode="linear", coordinate_transformation_mode="half_pixel"
        )

    def _add(self, layer, inputs, rank):
        return self.node("Sum", inputs)

    def _concatenate(self, layer, inputs, rank):
        if layer.axis not in (-1, rank - 1) or rank != 4:
            raise UnsupportedLayer(f"concatenate {layer.name} over axis {layer.axis}")
        return self.node("Concat", inputs, axis=1)

    def _flatten(self, layer, inputs, rank):
        # Keras flattens channels-last: back to (batch, H, W, C) first, a few thousand values.
        return self.node("Flatten", [self.node("Transpose", inputs[:1], perm=[0, 2, 3, 1])], axis=1)

    def _global_average_pooling2d(self, layer, inputs, rank):
        if layer.keepdims:
            raise UnsupportedLayer(f"pooling {layer.name}: keepdims")
        return self.node("Flatten", [self.node("GlobalAveragePool", inputs[:1])], axis=1)

    def _spatial_softmax_attention(self, layer, inputs, rank):
        x = inputs[0]
        query = self.node("Conv", [x, *map(self.constant, _conv_weights(layer.query))], kernel_shape=[1, 1])
        key = self.node("Conv", [x, *map(self.constant, _conv_weights(layer.key))], kernel_shape=[1, 1])
        positions_last = self.constant(np.array([0, 0, -1], np.int64))  # (batch, C, H*W)
        scores = self.node("Reshape", [self.node("Mul", [query, key]), positions_last])
        weights = self.node("Softmax", [scores], axis=-1)
        height, width = (int(v) for v in _inputs(layer)[0].shape[1:3])
        mean = self.node("ReduceMean", [weights, self.constant(np.array([1], np.int64))], keepdims=0)
        self.attention = (mean, height, width)
        values = self.node("Reshape", [x, positions_last])
        weighted = self.node("Mul", [weights, values])
        return self.node("ReduceSum", [weighted, self.constant(np.array([-1], np.int64))], keepdims=0)

    def _conv(self, layer, x: str, scale: float = 1.0) -> tuple[str, object]:
        """A Conv2D on its input scaled by `scale`, with the batch normalization reading it alone
        folded in: (the ONNX value, the layer whose output it is: that normalization or the conv)."""
        kernel, bias = _conv_weights(layer)
        kernel = kernel * np.float32(scale)
        produced = layer
        batch_norm = self.only_reader(layer, "BatchNormalization")
        if batch_norm is not None and layer.activation.__name__ == "linear":
            kernel, bias = _fold_batch_norm(batch_norm, kernel, bias, channel_axis=0)
            produced = batch_norm
        x = self.node(
            "Conv",
            [x, self.constant(kernel), self.constant(bias)],
            kernel_shape=list(layer.kernel_size),
            strides=list(layer.strides),
            pads=_conv_pads(layer),
        )
        return self.activation(x, layer.activation, axis=1), produced

    def _squeeze_excitation(self, layer, inputs, rank):
        x = inputs[0]
        gate = self.node("Flatten", [self.node("GlobalAveragePool", [x])], axis=1)
        for dense in (layer.squeeze, layer.excite):
            kernel, bias = _dense_weights(dense)
            gate = self.activation(
                self.node("Gemm", [gate, self.constant(kernel), self.constant(bias)]), dense.activation, axis=-1
            )
        gate = self.node("Unsqueeze", [gate, self.constant(np.array([2, 3], np.int64))])
        pool = self.only_reader(layer, "MaxPooling2D")
        if pool is not None and layer.excite.activation.__name__ == "sigmoid":
            # max(g*x) == g*max(x) for g > 0 (rounding is monotonic): gate a quarter of the values.
            return self.node("Mul", [self.node("MaxPool", [x], **_pool_attributes(pool)), gate]), pool
        return self.node("Mul", [x, gate]), layer


# Keyed by class name; any other layer is refused by name. The two attention layers are
# fer_core's own (`fer_core.models.layers`): a layer of another package named alike is refused.
_OWN_LAYERS = {"SqueezeExcitation", "SpatialSoftmaxAttention"}
_WRITERS = {
    "Dropout": _Graph._dropout,
    "Rescaling": _Graph._rescaling,
    "Conv2D": _Graph._conv2d,
    "Dense": _Graph._dense,
    "BatchNormalization": _Graph._batch_normalization,
    "Activation": _Graph._activation,
    "MaxPooling2D": _Graph._max_pooling2d,
    "ZeroPadding2D": _Graph._zero_padding2d,
    "Resizing": _Graph._resizing,
    "Add": _Graph._add,
    "Concatenate": _Graph._concatenate,
    "Flatten": _Graph._flatten,
    "GlobalAveragePooling2D": _Graph._global_average_pooling2d,
    "SqueezeExcitation": _Graph._squeeze_excitation,
    "SpatialSoftmaxAttention": _Graph._spatial_softmax_attention,
}


def _operations(model) -> list:
    """A functional model's operations in topological order: unlike `model.layers`, they include ops
    such as x[:, 1:] (a Sequential model has none but its layers)."""
    return list(getattr(model, "operations", None) or model.layers)


def _inputs(layer) -> list:
    return list(layer.input) if isinstance(layer.input, (list, tuple)) else [layer.input]


def _outputs(layer) -> list:
    return list(layer.output) if isinstance(layer.output, (list, tuple)) else [layer.output]


def _float32(layer, weights) -> list[np.ndarray]:
    if getattr(layer, "dtype_policy", None) is not None and layer.dtype_policy.compute_dtype != "float32":
        raise UnsupportedLayer(f"layer {layer.name} computes in {layer.dtype_policy.compute_dtype}")
    return [np.asarray(w, dtype=np.float32) for w in weights]


def _conv_weights(layer) -> tuple[np.ndarray, np.ndarray]:
    """(out, in, kh, kw) kernel and bias of a Conv2D (keras stores (kh, kw, in, out))."""
    if tuple(layer.dilation_rate) != (1, 1) or layer.groups != 1:
        raise UnsupportedLayer(f"conv {layer.name}: dilation or groups")
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
    if layer.axis not in (-1, len(_inputs(layer)[0].shape) - 1):
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


def _conv_pads(layer) -> list[int]:
    if layer.padding == "valid":
        return [0, 0, 0, 0]
    height, width = layer.kernel_size
    if height % 2 == 0 or width % 2 == 0 or tuple(layer.strides) != (1, 1):
        # keras pads such convs unevenly, more at the bottom and right
        raise UnsupportedLayer(f"conv {layer.name}: 'same' padding with strides or an even kernel")
    return [height // 2, width // 2, height // 2, width // 2]


def _pool_attributes(layer) -> dict:
    if layer.padding != "valid" or layer.data_format != "channels_last":
        raise UnsupportedLayer(f"pooling {layer.name}: padding or data format")
    return {"kernel_shape": list(layer.pool_size), "strides": list(layer.strides)}
