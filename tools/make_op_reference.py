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
    "reduce": "Reductions and the softmax family",
    "shape": "Shape and broadcasting",
    "linalg": "Linear algebra",
    "indexing": "Indexing",
    "nn": "Neural-network ops",
    "random": "Random numbers",
    "kernel": "Made by the compiler (never built by users)",
}

COMPOSITES = ["mean", "var", "min", "batch_norm", "layer_norm", "group_norm", "instance_norm", "mse",
              "binary_cross_entropy", "softmax_cross_entropy", "maxout", "prelu"]


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
           "[numerics.md](numerics.md).", ""]
    families = sorted({op.family for op in OPS.values()}, key=lambda f: list(FAMILY_TITLES).index(f)
                      if f in FAMILY_TITLES else 99)
    for fam in families:
        out += [f"## {FAMILY_TITLES.get(fam, fam)}", "", "| op | what it computes | grad | scalar |",
                "|---|---|---|---|", *op_rows(fam), ""]
    out += ["## Composite functions", "",
            "Built from the primitives above, so they need no gradient of their own.", "",
            "| function | signature | what it computes |", "|---|---|---|"]
    for name in COMPOSITES:
        fn = getattr(tg, name, None)
        if fn is None:
            continue
        sig = str(inspect.signature(fn))
        doc = (inspect.getdoc(fn) or "").split("\n")[0].replace("|", "\\|")
        out.append(f"| `tg.{name}` | `{sig}` | {doc} |")
    out += functional_sections()
    return "\n".join(out) + "\n"


# issue 10: the torch.nn.functional names, compositions of the primitives above
FUNCTIONAL = {
    "Activations (compositions; each fuses into one kernel)": [
        "silu", "swish", "mish", "selu", "celu", "relu6", "hardtanh", "hardswish", "hardsigmoid", "softsign",
        "logsigmoid", "softplus", "softmin", "glu"],
    "Losses (torch.nn.functional names and defaults)": [
        "nll_loss", "cross_entropy", "binary_cross_entropy_probs", "binary_cross_entropy_with_logits",
        "l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss", "kl_div", "cosine_similarity",
        "hinge_embedding_loss", "margin_ranking_loss"],
    "Attention": ["scaled_dot_product_attention"],
}


def functional_sections() -> list[str]:
    out = []
    for title, names in FUNCTIONAL.items():
        out += ["", f"## {title}", "", "| function | signature | what it computes |", "|---|---|---|"]
        for name in names:
            fn = getattr(tg, name, None)
            if fn is None:
                continue
            sig = str(inspect.signature(fn))
            doc = (inspect.getdoc(fn) or "").split("\n")[0].replace("|", "\\|")
            out.append(f"| `tg.{name}` | `{sig}` | {doc} |")
    return out


if __name__ == "__main__":
    target = Path(__file__).resolve().parent.parent / "docs" / "ops.md"
    target.write_text(render())
    print(f"wrote {target}", file=sys.stderr)
