"""The machine and the versions a report was measured on."""
from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2 ** 20:.1f} GiB"
    except OSError:
        pass
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        have = set(text.split("flags", 1)[1].split("\n", 1)[0].split())
        flags = " ".join(f for f in ("avx2", "fma", "avx512f") if f in have)
    except (OSError, IndexError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "isa": flags, "os": platform.platform()}


def versions() -> dict:
    def ver(pkg):
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "not installed"
    out = {"python": platform.python_version(), "numpy": ver("numpy"), "llvmlite": ver("llvmlite"),
           "torch": ver("torch"), "jax": ver("jax"), "jaxlib": ver("jaxlib"), "pytensor": ver("pytensor"),
           "tinygrad": ver("tinygrad")}
    try:
        import llvmlite.binding as llvm
        out["LLVM"] = ".".join(map(str, llvm.llvm_version_info))
    except Exception:  # noqa: BLE001 - the version line just says unknown
        out["LLVM"] = "?"
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        out["tensorforge"] = head + (" (+ uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        out["tensorforge"] = "?"
    return out
