"""Export a trained ``Model`` to ONNX (the optional ``onnx`` extra, imported only here).

The graph takes ``inputs`` ``(batch, n_inputs)`` float32 in the original units: the input
standardisation is folded into the first layer (``W' = W / scale``, ``b' = b - (mean / scale) W``),
so a runtime needs nothing but the file. Each layer is one ``Gemm`` and its activation.
Regression models output ``outputs`` ``(batch, n_outputs)``; classifiers output ``probabilities``
``(batch, n_classes)`` in ``classes`` order (a 1-unit sigmoid gives ``[1 - p, p]``) and ``labels``
``(batch,)``: the class names (int64 when every class is an integer, else strings).

The IR version and opset are pinned (``IR_VERSION``, ``OPSET``) so that runtimes from
onnxruntime 1.12 on load the file; newer runtimes refuse nothing older.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .activations import LEAKY_SLOPE

if TYPE_CHECKING:
    from .model import Model

IR_VERSION = 8
OPSET = 17
INSTALL_HINT = "pip install 'backprop-service[onnx]'"


class ExportUnavailableError(ImportError):
    """The ``onnx`` package is not installed."""


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ExportUnavailableError(f"ONNX export needs the onnx package: {INSTALL_HINT}") from exc
    return onnx


def _folded_layers(model: Model) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per layer ``(W, b)`` in float64, the input scaling folded into the first layer."""
    net = model.network
    layers = [(np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64))
              for w, b in zip(net.weights, net.biases, strict=True)]
    std = model.standardizer
    if std is not None:
        w0, b0 = layers[0]
        mean, scale = np.asarray(std.mean, np.float64), np.asarray(std.scale, np.float64)
        layers[0] = (w0 / scale[:, None], b0 - (mean / scale) @ w0)
    return layers


def _label_tensor(onnx: Any, classes: list[Any]) -> Any:
    if all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return onnx.numpy_helper.from_array(np.asarray(classes, dtype=np.int64), "classes")
    names = np.asarray([str(c) for c in classes], dtype=object)
    return onnx.helper.make_tensor("classes", onnx.TensorProto.STRING, [len(classes)],
                                   [n.encode("utf-8") for n in names])


def to_onnx(model: Model, name: str = "backprop") -> bytes:
    """The model as a serialised ONNX ``ModelProto``. Raises ``ExportUnavailableError`` without
    the ``onnx`` package."""
    onnx = _onnx()
    helper, TP = onnx.helper, onnx.TensorProto
    nodes: list[Any] = []
    inits: list[Any] = []
    current = "inputs"
    acts = model.network.activations
    for i, ((w, b), act) in enumerate(zip(_folded_layers(model), acts, strict=True)):
        inits += [onnx.numpy_helper.from_array(w.astype(np.float32), f"W{i}"),
                  onnx.numpy_helper.from_array(b.astype(np.float32), f"b{i}")]
        z = f"z{i}"
        nodes.append(helper.make_node("Gemm", [current, f"W{i}", f"b{i}"], [z], name=f"dense{i}"))
        current = z
        op = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu",
              "leaky_relu": "LeakyRelu", "softmax": "Softmax"}.get(act)
        if op is not None:
            attrs = {"alpha": LEAKY_SLOPE} if op == "LeakyRelu" else {}
            if op == "Softmax":
                attrs = {"axis": 1}
            nodes.append(helper.make_node(op, [z], [f"a{i}"], name=f"{act}{i}", **attrs))
            current = f"a{i}"

    batch = "batch"
    inputs = [helper.make_tensor_value_info("inputs", TP.FLOAT, [batch, model.n_inputs])]
    classes = model.classes
    if classes is None:
        nodes.append(helper.make_node("Identity", [current], ["outputs"], name="outputs"))
        outputs = [helper.make_tensor_value_info("outputs", TP.FLOAT,
                                                 [batch, model.network.n_outputs])]
    else:
        probs = "probabilities"
        if model.network.n_outputs == 1:  # a 1-unit sigmoid: [1 - p, p]
            inits.append(onnx.numpy_helper.from_array(np.ones((1, 1), np.float32), "one"))
            nodes += [helper.make_node("Sub", ["one", current], ["p0"], name="complement"),
                      helper.make_node("Concat", ["p0", current], [probs], axis=1,
                                       name="binary")]
        else:
            nodes.append(helper.make_node("Identity", [current], [probs], name=probs))
        label_tensor = _label_tensor(onnx, classes)
        inits.append(label_tensor)
        nodes += [helper.make_node("ArgMax", [probs], ["index"], axis=1, keepdims=0,
                                   name="argmax"),
                  helper.make_node("Gather", ["classes", "index"], ["labels"], axis=0,
                                   name="labels")]
        outputs = [helper.make_tensor_value_info(probs, TP.FLOAT, [batch, len(classes)]),
                   helper.make_tensor_value_info("labels", label_tensor.data_type, [batch])]

    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    proto = helper.make_model(graph, producer_name="backprop-service",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = IR_VERSION
    meta = {"task": model.task, "feature_names": ",".join(model.feature_names or [])}
    if classes is not None:
        meta["classes"] = ",".join(str(c) for c in classes)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()
