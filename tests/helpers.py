"""Helpers shared by several test modules (imported as ``helpers``: tests/ is on sys.path)."""
from __future__ import annotations

import tensorforge as tg


def apply_program(x, b, program):
    """The last value of a random elementwise ``program`` run on ``x`` and ``b``: each step,
    ("u", op, i) or ("b", op, i, j), applies the tg function ``op`` to earlier values (indices
    taken modulo the values so far) and appends the result."""
    vals = [x, b]
    for step in program:
        if step[0] == "u":
            vals.append(getattr(tg, step[1])(vals[step[2] % len(vals)]))
        else:
            vals.append(getattr(tg, step[1])(vals[step[2] % len(vals)], vals[step[3] % len(vals)]))
    return vals[-1]


def as_from_a_terminal() -> None:
    """``preexec_fn`` for a CLI child that a test interrupts with SIGINT: Ctrl-C reaches it as it
    would from a terminal. A child inherits an ignored SIGINT and a blocked signal mask from the
    process that starts it (exec resets only handled signals), and an earlier test in the same
    pytest worker may leave either behind; then the SIGINT would never arrive."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
