"""Write docs/graph_viewer.png: a screenshot of ``tg.export.to_html`` for the compiled (LLVM)
training step of a small MLP, fused kernels listing their ops and coloured by a profile's times,
opened centred on the kernel that computes log_softmax ("#at=log_softmax").

Run: python tools/make_viewer_screenshot.py   (needs headless Chromium: apt-get install chromium)
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import tensorforge as tg
from tensorforge import nn, optim

DOCS = Path(__file__).resolve().parent.parent / "docs"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def profiled_step():
    """The compiled 4-8-3 ReLU MLP step with Adam, called once, and a profile of it."""
    g = tg.Graph("mlp")
    x = tg.placeholder("x", (None, 4), graph=g)
    y = tg.placeholder("y", (None,), dtype="int64", graph=g)
    model = nn.Sequential(nn.Dense(4, 8, seed=0), nn.ReLU(), nn.Dense(8, 3, seed=1))
    loss = tg.mean(tg.softmax_cross_entropy(model(x, training=True), y))
    step = tg.compile([x, y], [loss], updates=optim.Adam(lr=1e-3).updates(loss, model.parameters(g)),
                      backend="llvm", name="mlp_step")
    rng = np.random.default_rng(0)
    xb, yb = rng.standard_normal((64, 4)).astype(np.float32), rng.integers(0, 3, 64)
    step(xb, yb)
    return step, step.profile(xb, yb, steps=50)


def main() -> None:
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        sys.exit("no headless Chromium found (apt-get install chromium)")
    step, profile = profiled_step()
    with tempfile.TemporaryDirectory() as tmp:
        page = tg.export.to_html(step, Path(tmp) / "step.html", profile=profile)
        out = DOCS / "graph_viewer.png"
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--virtual-time-budget=20000", "--window-size=1500,1150", f"--user-data-dir={tmp}/profile",
                        f"--screenshot={out}", page.as_uri() + "#at=log_softmax"], check=True, capture_output=True, timeout=300)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
