"""An ONNX model rewritten to take uint8 NHWC BGR pixels: the preprocessing runs inside ONNX Runtime.

The image input keeps its name; nodes in front of the original graph do Transpose (NHWC->NCHW) and
Gather (BGR->RGB) on uint8, then Cast, (v - 255 mean) and x 1/(255 std), so Python only letterboxes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

INNER_SUFFIX = "__prodseg_model_input"
FLOAT_TYPES = {1: np.float32, 10: np.float16}  # onnx TensorProto FLOAT, FLOAT16


def _image_input(model: Any) -> Any | None:
    """The model's one 4-D float graph input (initializers listed as inputs excluded), else None."""
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        return None
    tensor = inputs[0].type.tensor_type
    if len(tensor.shape.dim) != 4 or tensor.elem_type not in FLOAT_TYPES:
        return None
    return inputs[0]


def _nodes(
    onnx: Any, name: str, inner: str, elem_type: int, mean: list[float], std: list[float]
) -> tuple[list[Any], list[Any]]:
    """(nodes, initializers) from the uint8 NHWC input `name` to the float NCHW tensor `inner`."""
    h, nh = onnx.helper, onnx.numpy_helper
    p = name + "__prodseg_"
    inits = [
        nh.from_array(np.array([2, 1, 0], np.int64), p + "bgr"),
        nh.from_array((1.0 / (255.0 * np.asarray(std, np.float32))).reshape(1, 3, 1, 1), p + "scale"),
    ]
    nodes = [
        h.make_node("Transpose", [name], [p + "nchw"], perm=[0, 3, 1, 2], name=p + "transpose"),
        h.make_node("Gather", [p + "nchw", p + "bgr"], [p + "rgb"], axis=1, name=p + "rgb"),
        h.make_node("Cast", [p + "rgb"], [p + "f32"], to=1, name=p + "cast"),
    ]
    x = p + "f32"
    if any(mean):
        inits.append(nh.from_array((255.0 * np.asarray(mean, np.float32)).reshape(1, 3, 1, 1), p + "mean"))
        nodes.append(h.make_node("Sub", [x, p + "mean"], [p + "centred"], name=p + "sub"))
        x = p + "centred"
    scaled = inner if elem_type == 1 else p + "scaled"
    nodes.append(h.make_node("Mul", [x, p + "scale"], [scaled], name=p + "mul"))
    if elem_type != 1:
        nodes.append(h.make_node("Cast", [scaled], [inner], to=elem_type, name=p + "cast_model"))
    return nodes, inits


def uint8_bgr_input(path: str, mean: list[float], std: list[float]) -> bytes | None:
    """The model at `path` with a uint8 (N, H, W, 3) BGR input of the same name, serialised; None when
    the onnx package is missing, weights live in external files or the input is not one 4-D image."""
    try:
        import onnx
    except ImportError:
        return None
    model = onnx.load(path, load_external_data=False)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        return None
    image = _image_input(model)
    if image is None:
        return None
    name, tensor = image.name, image.type.tensor_type
    inner = name + INNER_SUFFIX
    for node in model.graph.node:
        node.input[:] = [inner if i == name else i for i in node.input]
    nodes, inits = _nodes(onnx, name, inner, tensor.elem_type, mean, std)
    n, _, hh, ww = tensor.shape.dim
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in (n, hh, ww)]
    image.CopyFrom(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.UINT8, [*dims, 3]))
    graph = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes + graph)  # ahead of every consumer: the graph stays topologically sorted
    model.graph.initializer.extend(inits)
    return model.SerializeToString()
