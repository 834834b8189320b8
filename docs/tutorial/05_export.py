# %% [markdown]
# # 5. Export: pictures, files, ONNX
#
# A graph can be drawn (Graphviz DOT text, or SVG/PNG pictures), saved to a JSON file with its
# parameters in an `.npz` (loading never executes code), and exported to ONNX for other runtimes.

# %%
import tempfile
from pathlib import Path

import numpy as np
import tensorforge as tg

g = tg.Graph("net")
with g:
    x = tg.placeholder("x", (None, 4))
    W = tg.parameter("W", tg.init.he_normal((4, 3), seed=0))
    b = tg.parameter("b", np.zeros(3, np.float32))
    y = tg.softmax(tg.relu(x @ W + b), axis=1)

dot = tg.export.to_dot(y)
print(dot[:300], "...")

# %% [markdown]
# Save and load back: the loaded graph computes the same function.

# %%
folder = Path(tempfile.mkdtemp())
tg.export.save(folder / "net.json", y)
loaded = tg.export.load(folder / "net.json")
print(loaded)

batch = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
(before,) = tg.compile([x], [y])(batch)
(after,) = tg.compile(loaded.inputs, loaded.outputs)(batch)
assert np.allclose(before, after)
print(after)

# %% [markdown]
# ONNX (needs the `export` extra: `pip install "tensorforge[export]"`): the exported model runs in
# ONNX Runtime and gives the same numbers.

# %%
try:
    import onnxruntime as ort
except ImportError:
    print("onnxruntime is not installed: pip install 'tensorforge[export]'")
else:
    tg.export.to_onnx([x], [y], folder / "net.onnx")
    session = ort.InferenceSession(str(folder / "net.onnx"), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {"x": batch})
    assert np.allclose(onnx_out, before, rtol=1e-5, atol=1e-6)
    print("ONNX Runtime agrees:", onnx_out.round(4).tolist())
