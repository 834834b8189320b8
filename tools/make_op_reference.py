"""Write docs/ops.md, the op reference, from the op registry (run after adding an op).

Usage: python tools/make_op_reference.py
"""
from __future__ import annotations

import inspect
import sys
from pathlib import Path

import tensorforge as tg
import tensorforge.kernel_ir  # noqa: F401  (registers the compiler's own "fused" op)
from tensorforge.ops import OPS

FAMILY_TITLES = {
    "elementwise": "Elementwise (fused by the code generators)",
    "math": "Elementwise math (fused like the elementwise ops; accuracy in numerics.md)",
    "reduce": "Reductions and the softmax family",
    "shape": "Shape and broadcasting",
    "linalg": "Linear algebra",
    "indexing": "Indexing",
    "nn": "Neural-network ops",
    "random": "Random numbers",
    "integer": "Predicates, rounding, integer division, bitwise and logical ops, clamp (fused)",
    "kernel": "Made by the compiler (never built by users)",
}

# Composite functions: built from the primitives above, so they need no gradient or kernel of
# their own. One section per family: (title, intro, function names).
COMPOSITE_SECTIONS = [
    ("Composite functions",
     "Built from the primitives above, so they need no gradient of their own.",
     ["mean", "min", "batch_norm", "layer_norm", "group_norm", "instance_norm", "mse", "binary_cross_entropy",
      "softmax_cross_entropy", "maxout", "prelu"]),
    ("Shape manipulation and indexing functions",
     "Compositions of slices, concat, reshape, broadcast_to, where, sums and matmul (ops/manipulation.py, "
     "ops/gather.py, ops/einsum.py): differentiated by autodiff, run on every backend. Gather-like "
     "functions select with `sum_j where(index == j, x[j], 0)` (one fused reduction kernel); their "
     "indices pass `index_in_range` (checked before each call when they come from an input, "
     "parameter or constant; NaN in float results of compiled code when computed out of range). "
     "`x[idx]` / `x[:, idx]` with one integer tensor or NumPy array item go through `tg.take` "
     "(negative indices wrap; an index from an input outside [-size, size) is refused before the call).",
     ["stack", "split", "chunk", "repeat", "tile", "repeat_interleave", "roll", "flip", "tril", "triu",
      "diagonal", "diag", "einsum", "unfold", "meshgrid", "masked_fill", "stop_gradient", "detach", "take",
      "index_select", "gather", "take_along_axis", "scatter_add", "index_add", "embedding"]),
    ("Scans, sorting and reductions",
     "Compositions of the primitives above (ops/scan.py, ops/sort.py, ops/reductions.py): they run on "
     "every backend, fuse, and differentiate through autodiff.",
     ["cumsum", "cumprod", "cummax", "cummin", "logcumsumexp", "sort", "argsort", "topk", "argmax", "argmin",
      "prod", "any", "all", "var", "std", "norm", "logsumexp"]),
    ("Padding, convolution, pooling, interpolation",
     "torch.nn.functional signatures and output sizes. The native `conv2d`, `max_pool2d` and "
     "`avg_pool2d` kernels run the cases they cover; the rest are compositions of slices, concat, "
     "`where` and those kernels (see the docstrings of ops/padding.py, ops/convolution.py, ops/pooling.py).",
     ["pad", "conv1d", "conv2d", "conv3d", "conv_transpose2d", "max_pool1d", "max_pool2d", "avg_pool1d",
      "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "interpolate"]),
    ("Activations",
     "Compositions of elementwise ops (ops/activations.py); each fuses into one kernel. `gelu` is in "
     "the elementwise math family.",
     ["silu", "swish", "mish", "selu", "celu", "relu6", "hardtanh", "hardswish", "hardsigmoid", "softsign",
      "logsigmoid", "softplus", "softmin", "glu"]),
    ("Losses",
     "torch.nn.functional names and defaults (ops/losses.py); every loss takes "
     "`reduction=\"mean\"|\"sum\"|\"none\"`.",
     ["nll_loss", "cross_entropy", "binary_cross_entropy_probs", "binary_cross_entropy_with_logits",
      "l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss", "kl_div", "cosine_similarity",
      "hinge_embedding_loss", "margin_ranking_loss"]),
    ("Attention",
     "Built from matmul, softmax and where (ops/attention.py), so its elementwise parts fuse.",
     ["scaled_dot_product_attention"]),
]


def composite_rows(names) -> list[str]:
    """One table row per public function: its signature and the first line of its docstring."""
    rows = []
    for name in names:
        fn = getattr(tg, name, None)
        if fn is None:
            raise SystemExit(f"tg.{name} is listed in COMPOSITE_SECTIONS but does not exist")
        sig = str(inspect.signature(fn))
        doc = (inspect.getdoc(fn) or "").split("\n\n")[0].replace("\n", " ").replace("|", "\\|")
        rows.append(f"| `tg.{name}` | `{sig}` | {doc} |")
    return rows


def op_rows(family: str) -> list[str]:
    rows = []
    for name, op in sorted(OPS.items()):
        if op.family != family:
            continue
        grad = "yes" if op.vjp is not None else ("zero" if not op.differentiable else "no")
        scalar = "yes" if op.scalar is not None else ""
        doc = (op.doc or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{name}` | {doc} | {grad} | {scalar} |")
    return rows


def render() -> str:
    out = ["# Op reference", "",
           "Generated from the op registry by `tools/make_op_reference.py`; do not edit by hand.",
           "Every primitive below declares its shape rule, NumPy reference and pullback in one place",
           "(`src/tensorforge/ops/<family>.py`). *grad*: `yes` = has a pullback, `zero` = gradient is zero",
           "by definition. *scalar*: declares a scalar expression, so the code generators fuse it.",
           "Type promotion, tolerances, NaN/inf and the gradient conventions at 0: "
           "[numerics.md](numerics.md). Every public op and function is checked against PyTorch on every",
           "backend by the op-info table (tests/opinfo/, run by tests/test_opinfo.py).", ""]
    families = sorted({op.family for op in OPS.values()}, key=lambda f: list(FAMILY_TITLES).index(f)
                      if f in FAMILY_TITLES else 99)
    for fam in families:
        out += [f"## {FAMILY_TITLES.get(fam, fam)}", "", "| op | what it computes | grad | scalar |",
                "|---|---|---|---|", *op_rows(fam), ""]
    for title, intro, names in COMPOSITE_SECTIONS:
        out += [f"## {title}", "", intro, "", "| function | signature | what it computes |", "|---|---|---|",
                *composite_rows(names), ""]
    return "\n".join(out)


if __name__ == "__main__":
    target = Path(__file__).resolve().parent.parent / "docs" / "ops.md"
    target.write_text(render())
    print(f"wrote {target}", file=sys.stderr)
