"""Load a PyTorch ``state_dict`` into a built ``tg.nn`` model: ``from_torch_state_dict``.

Torch names a tensor by the dotted path of its module (attribute names, positions
in a Sequential or a list) and the parameter's local name: ``fc1.weight``,
``features.0.bias``, ``bn.running_mean``. The same paths are computed on the
tensorforge side by ``Module.named_modules()``; each layer class maps torch's
local names onto its own (``torch_names``: Linear ``weight`` is Dense ``W``,
stored transposed, ``torch_transposed``) and may ignore a few torch-only
buffers (``torch_ignored``: BatchNorm's ``num_batches_tracked``).

The values may be torch tensors or NumPy arrays; torch itself is never imported.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .._typing import Array
from ..graph import Graph, Tensor
from .module import Module

__all__ = ["from_torch_state_dict", "torch_parameter_map"]


def _as_array(value: Any) -> Array:
    if hasattr(value, "detach"):                 # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def torch_parameter_map(module: Module, graph: Graph | None = None) -> dict[str, tuple[Tensor, bool] | None]:
    """{torch key: (parameter tensor, transposed?)} for every parameter and state of the built
    ``module``; plus the torch keys it knowingly ignores, mapped to None."""
    graph = module._resolve_graph(graph)
    out: dict[str, tuple[Tensor, bool] | None] = {}
    for path, m in module.named_modules():
        prefix = path + "." if path else ""
        ours_to_torch = {ours: theirs for theirs, ours in type(m).torch_names.items()}
        for local, tensor in m._params.get(graph, {}).items():
            key = ours_to_torch.get(local, local)
            out[prefix + key] = (tensor, key in type(m).torch_transposed)
        if m._params.get(graph):
            for key in type(m).torch_ignored:
                out[prefix + key] = None
    return out


def from_torch_state_dict(module: Module, state_dict: Mapping[str, Any], strict: bool = True,
                          graph: Graph | None = None) -> dict[str, list[str]]:
    """Copy a torch ``state_dict`` into the parameters of ``module`` (built: called once on a
    placeholder), in place, like torch's ``load_state_dict``.

    Keys are matched by torch's dotted module paths (see the module docstring); Linear weights
    (out, in) are transposed into Dense's (in, out); every shape is checked before anything is
    written. ``strict=True`` raises KeyError naming the missing and unexpected keys (keys torch
    keeps that have no meaning here, such as ``num_batches_tracked``, are accepted and ignored).
    Returns ``{"missing_keys": [...], "unexpected_keys": [...]}``.
    """
    if not isinstance(module, Module):
        raise TypeError(f"from_torch_state_dict: expected a tg.nn Module, got {type(module).__name__}")
    targets = torch_parameter_map(module, graph)
    given = {str(k): v for k, v in dict(state_dict).items()}
    missing = sorted(k for k, t in targets.items() if t is not None and k not in given)
    unexpected = sorted(k for k in given if k not in targets)
    if strict and (missing or unexpected):
        raise KeyError(f"from_torch_state_dict: missing keys {missing}, unexpected keys {unexpected} "
                       f"(known keys: {sorted(k for k, t in targets.items() if t is not None)})")
    writes: list[tuple[Tensor, Array]] = []
    for key, value in given.items():
        target = targets.get(key)
        if target is None:
            continue
        tensor, transposed = target
        array = _as_array(value)
        if transposed:
            array = array.T
        if array.shape != tuple(tensor.shape):
            want = tuple(tensor.shape)[::-1] if transposed else tuple(tensor.shape)
            layout = " (torch's (out, in) layout of the (in, out) Dense weight)" if transposed else ""
            raise ValueError(f"from_torch_state_dict: {key!r} has shape {_as_array(value).shape}, expected "
                             f"{want}{layout} for parameter {tensor.name!r}")
        writes.append((tensor, array))
    for tensor, array in writes:
        tensor.value = np.ascontiguousarray(array, dtype=tensor.dtype)
    return {"missing_keys": missing, "unexpected_keys": unexpected}
