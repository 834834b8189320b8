"""``tg.export``: look at graphs and move them out of the process.

    to_dot / draw         Graphviz DOT text, and SVG/PNG pictures (Graphviz or matplotlib)
    to_html               one self-contained interactive page (zoom, search, fused kernels, profiles)
    save / load           a JSON graph file plus an .npz of arrays (no pickle, validated on load)
    to_onnx               inference graphs as ONNX models
    save_checkpoint ...   training checkpoints used by ``tg.train.fit(checkpoint_dir=...)``
"""
from __future__ import annotations

from .dot import to_dot, gradient_nodes
from .draw import draw
from .html import to_html
from .serialize import FORMAT_VERSION, Loaded, LoadError, load, save
from .onnx_export import UnsupportedOpError, to_onnx
from .checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint

__all__ = ["to_dot", "gradient_nodes", "draw", "to_html", "save", "load", "Loaded", "LoadError", "FORMAT_VERSION",
           "to_onnx", "UnsupportedOpError", "save_checkpoint", "load_checkpoint", "latest_checkpoint",
           "CheckpointError"]
