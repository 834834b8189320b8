"""Export inference graphs to ONNX, one tensorforge op at a time.

Layers that tensorforge builds from primitives (Dense = matmul + add, LayerNorm and
BatchNorm in evaluation mode = reductions and elementwise ops, Flatten = reshape) are
exported as those primitives, so every model made of the supported ops below exports;
``onnx.checker.check_model`` validates the result. Placeholders become graph inputs
(``None`` dims become symbolic), parameters and constants initializers. An op with no
translation (training-only ops such as dropout, gradient ops) raises
:class:`UnsupportedOpError` naming it.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, NoReturn, Sequence

import numpy as np
import numpy.typing as npt

from .._typing import DTypeLike, PathLike
from ..graph import Graph, Tensor
from ..ops.registry import normalize_axis

if TYPE_CHECKING:
    import onnx

__all__ = ["to_onnx", "UnsupportedOpError", "SUPPORTED_OPS"]


class UnsupportedOpError(NotImplementedError):
    """The graph uses an op that has no ONNX translation."""


UNARY = {"neg": "Neg", "abs": "Abs", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "relu": "Relu",
         "sigmoid": "Sigmoid", "tanh": "Tanh", "sign": "Sign", "softplus": "Softplus"}
BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "maximum": "Max",
          "minimum": "Min", "matmul": "MatMul", "eq": "Equal", "gt": "Greater", "lt": "Less",
          "ge": "GreaterOrEqual", "le": "LessOrEqual"}


class _Builder:
    """Collects ONNX nodes and initializers, naming values after tensorforge node ids."""

    def __init__(self, graph: Graph, opset: int) -> None:
        import onnx
        from onnx import helper, numpy_helper
        self.onnx, self.helper, self.numpy_helper = onnx, helper, numpy_helper
        self.graph, self.opset = graph, opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._k = 0

    def name(self, nid: int) -> str:
        return f"t{nid}"

    def fresh(self, stem: str) -> str:
        self._k += 1
        return f"{stem}_{self._k}"

    def const(self, value: npt.ArrayLike, dtype: DTypeLike = np.int64) -> str:
        name = self.fresh("c")
        self.initializers.append(self.numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(self, op_type: str, inputs: Sequence[str], outputs: Sequence[str] | None = None, **attrs: Any) -> str:
        out = outputs or [self.fresh(op_type.lower())]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), list(out), **attrs))
        return out[0]

    def reduce(self, op_type: str, x: str, axes: Sequence[int], keepdims: bool, out: str) -> str:
        """Reduce ops take axes as an input from opset 18 (ReduceSum: from 13)."""
        keep = int(bool(keepdims))
        if op_type == "ReduceSum" and self.opset >= 13 or self.opset >= 18:
            return self.node(op_type, [x, self.const(list(axes))], [out], keepdims=keep)
        return self.node(op_type, [x], [out], axes=list(axes), keepdims=keep)


def _translate(b: _Builder, nid: int) -> None:
    g = b.graph
    d = g.node(nid)
    op, attrs = d["op"], dict(d["attrs"])
    ins = [b.name(i) for i in d["inputs"]]
    out = b.name(nid)
    in_shapes = [g.node(i)["shape"] for i in d["inputs"]]
    if op in UNARY:
        b.node(UNARY[op], ins, [out])
    elif op in BINARY:
        b.node(BINARY[op], ins, [out])
    elif op == "ne":
        b.node("Not", [b.node("Equal", ins)], [out])
    elif op == "where":
        b.node("Where", ins, [out])
    elif op == "leaky_relu":
        b.node("LeakyRelu", ins, [out], alpha=float(attrs["alpha"]))
    elif op == "elu":
        b.node("Elu", ins, [out], alpha=float(attrs["alpha"]))
    elif op == "cast":
        b.node("Cast", ins, [out], to=int(b.helper.np_dtype_to_tensor_dtype(np.dtype(attrs["dtype"]))))
    elif op in ("softmax", "log_softmax"):
        b.node("Softmax" if op == "softmax" else "LogSoftmax", ins, [out], axis=int(attrs["axis"]))
    elif op in ("sum", "max", "min", "logsumexp"):
        axes = normalize_axis(attrs.get("axis"), len(in_shapes[0]))
        kind = {"sum": "ReduceSum", "max": "ReduceMax", "min": "ReduceMin", "logsumexp": "ReduceLogSumExp"}[op]
        if not axes:
            b.node("Identity", ins, [out])
        else:
            b.reduce(kind, ins[0], axes, attrs.get("keepdims", False), out)
    elif op == "numel":
        _numel(b, d, attrs, in_shapes[0], ins[0], out)
    elif op == "reshape":
        b.node("Reshape", [ins[0], b.const(list(attrs["shape"]))], [out],
               **({"allowzero": 1} if b.opset >= 14 else {}))
    elif op == "reshape_like":
        b.node("Reshape", [ins[0], b.node("Shape", [ins[1]])], [out])
    elif op == "broadcast_to":
        b.node("Expand", [ins[0], b.const([(-1 if s is None else s) for s in attrs["shape"]])], [out]) \
            if None not in attrs["shape"] else _unsupported(op, nid, d, "a shape with unknown dims")
    elif op == "broadcast_like":
        b.node("Expand", [ins[0], b.node("Shape", [ins[1]])], [out])
    elif op == "transpose":
        perm = attrs.get("axes")
        perm = list(reversed(range(len(in_shapes[0])))) if perm is None else [a % len(in_shapes[0]) for a in perm]
        b.node("Transpose", ins, [out], perm=perm)
    elif op in ("expand_dims", "squeeze"):
        rank = len(d["shape"]) if op == "expand_dims" else len(in_shapes[0])
        new_axes = [a % rank for a in attrs["axes"]]
        b.node("Unsqueeze" if op == "expand_dims" else "Squeeze", [ins[0], b.const(new_axes)], [out])
    elif op == "concat":
        b.node("Concat", ins, [out], axis=int(attrs["axis"]) % len(d["shape"]))
    elif op == "conv2d":
        ph, pw = attrs["padding"]
        b.node("Conv", ins, [out], strides=list(attrs["stride"]), pads=[ph, pw, ph, pw],
               kernel_shape=list(g.node(d["inputs"][1])["shape"][2:]))
    elif op in ("max_pool2d", "avg_pool2d"):
        ph, pw = attrs["padding"]
        kw: dict[str, Any] = dict(kernel_shape=list(attrs["kernel"]), strides=list(attrs["stride"]),
                                  pads=[ph, pw, ph, pw])
        if op == "avg_pool2d":
            kw["count_include_pad"] = 1      # tensorforge divides by the full window, padding included
        b.node("MaxPool" if op == "max_pool2d" else "AveragePool", ins, [out], **kw)
    else:
        _unsupported(op, nid, d)


def _unsupported(op: str, nid: int, d: Mapping[str, Any], why: str = "") -> NoReturn:
    raise UnsupportedOpError(f"to_onnx: op {op!r} (node %{nid}, {d['name']!r}) has no ONNX translation"
                             + (f" ({why})" if why else "") + "; export an inference graph "
                             f"(evaluation mode, no gradients) or one of: {', '.join(SUPPORTED_OPS)}")


def _numel(b: _Builder, d: Mapping[str, Any], attrs: Mapping[str, Any], shape: Sequence[int | None], x: str,
           out: str) -> None:
    """numel(x, axis): a constant when the dims are known, else the product of Shape(x) entries."""
    axes = normalize_axis(attrs.get("axis"), len(shape))
    dtype = np.dtype(d["dtype"])
    dims = [shape[a] for a in axes]
    known = [s for s in dims if s is not None]
    if len(known) == len(dims):
        value = np.asarray(int(np.prod(known, dtype=np.int64)), dtype=dtype)
        b.initializers.append(b.numpy_helper.from_array(value, out))
        return
    picked = b.node("Gather", [b.node("Shape", [x]), b.const(list(axes))], axis=0)
    prod = b.reduce("ReduceProd", picked, [0], False, b.fresh("prod"))
    b.node("Cast", [prod], [out], to=int(b.helper.np_dtype_to_tensor_dtype(dtype)))


SUPPORTED_OPS = sorted(set(UNARY) | set(BINARY) | {
    "ne", "where", "leaky_relu", "elu", "cast", "softmax", "log_softmax", "sum", "max", "min", "logsumexp",
    "numel",
    "reshape", "reshape_like", "broadcast_to", "broadcast_like", "transpose", "expand_dims", "squeeze",
    "concat", "conv2d", "max_pool2d", "avg_pool2d"})


def _value_info(b: _Builder, name: str, t: Tensor, stem: str) -> onnx.ValueInfoProto:
    dims: list[str | int] = [f"{stem}_d{k}" if s is None else int(s) for k, s in enumerate(t.shape)]
    if t.shape and t.shape[0] is None:
        dims[0] = "batch"
    info: onnx.ValueInfoProto = b.helper.make_tensor_value_info(
        name, b.helper.np_dtype_to_tensor_dtype(np.dtype(t.dtype)), dims)
    return info


def to_onnx(inputs: Tensor | Sequence[Tensor], outputs: Tensor | Sequence[Tensor], path: PathLike, opset: int = 17,
            name: str | None = None) -> onnx.ModelProto:
    """Write the inference graph from placeholders ``inputs`` to ``outputs`` as an ONNX model at
    ``path`` and return the ``onnx.ModelProto``. Inputs and outputs keep their tensorforge names."""
    try:
        import onnx
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("to_onnx needs the onnx package: pip install 'tensorforge[export]'") from None
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    graph = outs[0].graph
    graph.sync_host()
    b = _Builder(graph, opset)
    input_ids = {t.id for t in ins}
    for t in ins:
        if t.op != "placeholder":
            raise ValueError(f"to_onnx: input {t!r} is not a placeholder")
    # graph inputs and outputs carry the user's names; Identity nodes connect them to t<id> values
    in_infos: list[onnx.ValueInfoProto] = []
    out_infos: list[onnx.ValueInfoProto] = []
    names: set[str] = set()
    for t in ins:
        b.node("Identity", [t.name], [b.name(t.id)])
        in_infos.append(_value_info(b, t.name, t, "in"))
        names.add(t.name)
    for nid in graph.topological_order([t.id for t in outs]):
        d = graph.node(nid)
        if d["op"] == "placeholder":
            if nid not in input_ids:
                raise ValueError(f"to_onnx: the outputs depend on placeholder {d['name']!r}, which is not "
                                 "among the inputs")
        elif d["op"] in ("parameter", "constant"):
            b.initializers.append(b.numpy_helper.from_array(np.asarray(graph.values[nid]), b.name(nid)))
        else:
            _translate(b, nid)
    for k, t in enumerate(outs):
        out_name = t.name if t.name not in names else f"output_{k}"
        names.add(out_name)
        b.node("Identity", [b.name(t.id)], [out_name])
        out_infos.append(_value_info(b, out_name, t, f"out{k}"))
    onnx_graph = b.helper.make_graph(b.nodes, name or graph.name, in_infos, out_infos, b.initializers)
    model: onnx.ModelProto = b.helper.make_model(onnx_graph, opset_imports=[b.helper.make_opsetid("", int(opset))],
                                producer_name="tensorforge")
    model.ir_version = min(model.ir_version, 8) if opset <= 17 else model.ir_version
    onnx.checker.check_model(model, full_check=True)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    from .._fileio import atomic_write
    data = model.SerializeToString()
    atomic_write(target, data)
    return model
