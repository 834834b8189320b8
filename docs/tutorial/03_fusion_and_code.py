# %% [markdown]
# # 3. Fusion and the generated code
#
# Compiling for a native backend runs graph passes first: constant folding, algebraic
# simplification, common-subexpression elimination, dead-code elimination, and **fusion**, which
# merges chains of elementwise work (and the reductions that follow them) into one loop nest, so
# intermediate arrays are never written to memory.

# %%
import numpy as np
import tensorforge as tg

g = tg.Graph("chain")
with g:
    x = tg.placeholder("x", (None,))
    y = tg.sigmoid(1.5 * x - 0.25) * tg.tanh(x) + tg.maximum(x - 1.0, 0.0) * 0.5

f_ref = tg.compile([x], [y], backend="interp")
f = tg.compile([x], [y], backend="llvm")
data = np.linspace(-4, 4, 1001).astype(np.float32)
(out,) = f(data)
assert np.allclose(out, f_ref(data)[0], rtol=1e-5, atol=1e-6)
print(f)                       # the passes' node counts and the one fused kernel

# %% [markdown]
# The fused kernel is described in the *kernel IR* shared by both code generators (a loop nest,
# its loads with strides, and one scalar expression). The LLVM backend turns it into LLVM IR and
# then into machine code for this CPU. `f.ir` is the IR; here are the lines of the loop body that
# compute the expression (vector instructions such as `<8 x float>` work on several elements at once):

# %%
body = [line for line in f.ir.splitlines() if "fmul" in line or "fadd" in line]
print(len(f.ir.splitlines()), "lines of LLVM IR;", len(body), "multiply/add instructions, e.g.:")
print("\n".join(body[:5]))

# %% [markdown]
# Compare the node-by-node interpreter with the compiled kernel on a larger array:

# %%
import time

big = np.random.default_rng(0).standard_normal(2_000_000).astype(np.float32)
for name, fn in [("interp", f_ref), ("llvm", f)]:
    fn(big)
    t0 = time.perf_counter()
    for _ in range(5):
        fn(big)
    print(f"{name:7s} {(time.perf_counter() - t0) / 5 * 1e3:7.2f} ms per call")
