"""Where a compiled step spends its time: one row per kernel (llvm, triton) or per NumPy call (interp).

``fn.profile(*inputs, steps=20)`` (see ``CompiledFunction.profile``) runs timed steps and returns
a ``Profile``; ``print(profile)`` shows the kernels that take longest, the way ``DEBUG=2`` in
tinygrad or a framework profiler's kernel table would. How each backend times its kernels:

    interp  the clock around each node's NumPy call
    llvm    the CPU's cycle counter around each kernel inside ``tf_step`` (a separate build of
            the step that carries the counters), scaled by the wall time of the native call
    triton  each launch on its own, with a device synchronisation before and after it (no
            CUDA graph), so a small kernel's time includes its launch cost
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KernelTime:
    kernel: str          # the kernel's line from the executable's kernel list (or the node)
    seconds: float       # mean time per step


@dataclass(frozen=True)
class Profile:
    function: str
    backend: str
    steps: int
    step_seconds: float              # mean wall time of a timed step (timing overhead included)
    kernels: tuple[KernelTime, ...]  # in execution order

    @classmethod
    def from_runs(cls, function: str, backend: str, runs, wall_seconds: float) -> "Profile":
        """``runs``: per step, the ``[(kernel, seconds), ...]`` of one ``timed_call``."""
        if not runs:
            raise ValueError("a profile needs at least one timed step")
        labels = [label for label, _ in runs[0]]
        totals = [0.0] * len(labels)
        for run in runs:
            for k, (_, seconds) in enumerate(run):
                totals[k] += seconds
        n = len(runs)
        return cls(function, backend, n, wall_seconds / n,
                   tuple(KernelTime(label, total / n) for label, total in zip(labels, totals)))

    @property
    def kernel_seconds(self) -> float:
        """Mean time per step spent inside the kernels."""
        return sum(k.seconds for k in self.kernels)

    def top(self, n: int = 10) -> list[KernelTime]:
        """The ``n`` kernels that take longest, longest first."""
        return sorted(self.kernels, key=lambda k: -k.seconds)[:n]

    def table(self, n: int = 15, width: int = 110) -> str:
        total = self.kernel_seconds or 1.0
        lines = [f"profile of {self.function} on {self.backend}: {self.steps} steps, "
                 f"{self.step_seconds * 1e6:,.1f} us per timed step, {self.kernel_seconds * 1e6:,.1f} us in "
                 f"{len(self.kernels)} kernels",
                 f"{'us/step':>10}  {'share':>6}  kernel"]
        shown = self.top(n)
        for k in shown:
            label = k.kernel if len(k.kernel) <= width else k.kernel[:width - 3] + "..."
            lines.append(f"{k.seconds * 1e6:>10,.1f}  {k.seconds / total:>6.1%}  {label}")
        rest = self.kernels and len(self.kernels) - len(shown)
        if rest:
            rest_s = self.kernel_seconds - sum(k.seconds for k in shown)
            lines.append(f"{rest_s * 1e6:>10,.1f}  {rest_s / total:>6.1%}  ({rest} more kernels)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()
