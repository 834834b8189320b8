"""JIT plumbing: optimise LLVM IR for the host CPU, compile it with MCJIT, hand out function pointers.

One place owns the LLVM state: the native target is initialised once, the host
``TargetMachine`` (O3, host CPU name and features, so AVX2/AVX-512 are used) is
built once, and every compiled module keeps its execution engine alive for as long
as its ``CompiledModule`` lives (function pointers die with the engine).

Compilation always goes IR text -> optimised module (new pass manager, loop and
SLP vectorisation on) -> object code -> MCJIT. The object code can be cached on
disk (``compile_module(ir, key=...)``), under ``tensorforge.runtime.cache_dir()``.
An entry (object code + optimised IR) is signed as a group (``_fileio.write_signed_group``:
one sha256 over the entry's name and both files), checked before LLVM sees it, so a
corrupted, truncated or swapped file is ignored and rebuilt, and loading it only maps
machine code (no Python is ever executed from the cache).
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import llvmlite
import llvmlite.binding as llvm

from ... import runtime
from ..._fileio import read_signed_group, write_signed_group

log = logging.getLogger("tensorforge.cache")
_lock = threading.Lock()
_state: dict = {}


def _initialise_native_target() -> None:
    """llvmlite 0.50: llvm.initialize() is gone; only the native target and asm printer are needed."""
    if "initialised" not in _state:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        _state["initialised"] = True


def _new_target_machine():
    """A fresh host TargetMachine: O3, host CPU name and feature string (or nothing vectorises wide)."""
    _initialise_native_target()
    if "cpu" not in _state:
        _state["cpu"] = llvm.get_host_cpu_name()
        _state["features"] = _with_tuning(llvm.get_host_cpu_features().flatten())
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=_state["cpu"], features=_state["features"], opt=3,
                                        codemodel="jitdefault")


# Tell the cost model that vector gathers and scatters are slow. Otherwise the loop vectoriser
# turns small-trip-count nests (pooling over 8x8 planes, per-channel convolution sums) into
# gathers across the outer loop, which on Zen 5 ran 6-8x slower than the scalar code
# (max_pool2d on 64x8x8x8: 27 us -> 4 us). Contiguous and interleaved loads are unaffected.
_TUNING_FEATURES = ("+prefer-no-gather", "+prefer-no-scatter")


def _with_tuning(features: str) -> str:
    return ",".join([f for f in features.split(",") if f] + list(_TUNING_FEATURES))


def target_machine():
    """The shared host TargetMachine used to optimise and emit code (built once)."""
    with _lock:
        if "tm" not in _state:
            _state["tm"] = _new_target_machine()
        return _state["tm"]


def target_description() -> str:
    """Triple, CPU and features: part of every cache key (object code is only valid on this target)."""
    tm = target_machine()
    return f"{tm.triple}|{_state['cpu']}|{_state['features']}|llvmlite {llvmlite.__version__}"


def optimise(module, speed_level: int = 3) -> None:
    """Run the new-pass-manager O<speed_level> pipeline in place, with loop and SLP vectorisation on."""
    pto = llvm.create_pipeline_tuning_options(speed_level=speed_level)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_unrolling = True
    pb = llvm.create_pass_builder(target_machine(), pto)
    pb.getModulePassManager().run(module, pb)


def _parse(ir_text: str):
    _initialise_native_target()
    module = llvm.parse_assembly(ir_text)
    module.verify()
    tm = target_machine()
    module.triple = tm.triple
    module.data_layout = str(tm.target_data)
    return module


@dataclass
class CompiledModule:
    """A module loaded into its own MCJIT engine; keep it alive while its pointers are used."""
    engine: object
    ir: str | None                    # optimised IR text (None for a cache hit without the .ll sidecar)
    compile_seconds: float            # wall time of optimise + codegen + load (or of the cache load)
    from_cache: bool = False
    object_code: bytes | None = field(default=None, repr=False)
    _asm: str | None = field(default=None, repr=False)
    _functions: dict = field(default_factory=dict, repr=False)

    def address(self, name: str) -> int:
        addr = self.engine.get_function_address(name)
        if not addr:
            raise KeyError(f"function {name!r} is not defined in the compiled module")
        return addr

    def function(self, name: str, restype, argtypes):
        """A ctypes function for ``name`` (cached: building the prototype costs more than calling)."""
        cache_key = (name, restype, tuple(argtypes))
        if cache_key not in self._functions:
            proto = ctypes.CFUNCTYPE(restype, *argtypes)
            self._functions[cache_key] = proto(self.address(name))
        return self._functions[cache_key]

    @property
    def asm(self) -> str:
        """Assembly of the optimised module (generated on first request; for inspection only)."""
        if self._asm is None:
            if self.ir is None:
                raise RuntimeError("assembly is unavailable: the module came from a cache without its IR")
            self._asm = target_machine().emit_assembly(_parse(self.ir))
        return self._asm


def _cache_entry(key: str, ir_text: str) -> str:
    # the IR text is hashed in too (cheap next to codegen): a reused key can never serve stale code
    h = hashlib.sha256(f"{key}\n{target_description()}\n".encode())
    h.update(ir_text.encode())
    return h.hexdigest()


def _cache_folder() -> Path:
    return runtime.cache_dir() / "llvm"


def read_cached_object(entry: str) -> bytes | None:
    """The object code of a disk-cache entry named ``entry`` (a hex digest), if present and intact."""
    cached = _read_cache(entry)
    return cached[0] if cached is not None else None


def write_cached_object(entry: str, obj: bytes, ir_text: str) -> None:
    """Store ``obj`` (and its IR, for inspection) under ``entry``; never raises."""
    _write_cache(entry, obj, ir_text)


def _read_cache(entry: str) -> tuple[bytes, str | None] | None:
    """(object code, optimised IR) if the entry's signature covers both and matches; None otherwise
    (never raises). The signature binds the files to the entry's name, so an object file copied
    from another entry is a miss, not another kernel."""
    files, why = read_signed_group(_cache_folder(), entry)
    if files is None or "o" not in files or "ll" not in files:
        if files is not None or why != "no entry":
            log.warning("llvm object cache: entry %s ignored and rebuilt: %s", entry[:16], why or "incomplete")
        return None
    try:
        return files["o"], files["ll"].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _write_cache(entry: str, obj: bytes, ir_text: str) -> None:
    try:
        write_signed_group(_cache_folder(), entry, {"o": obj, "ll": ir_text.encode()})
    except OSError:
        pass  # a read-only or full cache folder must not break compilation


def _load_object(obj: bytes):
    """A fresh MCJIT engine (empty module) with the object code mapped in."""
    if b"tf_pool_run" in obj:            # a parallel step: its pool runtime must be resolvable
        from .pool import ensure_loaded
        ensure_loaded()
    return engine_for_object(obj)


def engine_for_object(obj: bytes):
    """A fresh MCJIT engine holding only ``obj`` (its external symbols must already resolve)."""
    # MCJIT takes ownership of the target machine it is given and frees it with the engine,
    # so each engine gets its own; the shared one must never be handed over.
    tm = _new_target_machine()
    holder = llvm.parse_assembly("")
    holder.triple = tm.triple
    engine = llvm.create_mcjit_compiler(holder, tm)
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    return engine


def compile_module(ir_text: str, key: str | None = None, speed_level: int = 3) -> CompiledModule:
    """Optimise and compile ``ir_text``; with ``key``, reuse/store the object code in the disk cache.

    The key names the entry (e.g. a hash of the graph); the target description and the IR
    text are hashed into it here, so a shared cache folder or a reused key stays correct.
    """
    start = time.perf_counter()
    entry = _cache_entry(key, ir_text) if key is not None else None
    if entry is not None:
        cached = _read_cache(entry)
        if cached is not None:
            obj, ir = cached
            engine = _load_object(obj)
            return CompiledModule(engine, ir, time.perf_counter() - start, from_cache=True)
    module = _parse(ir_text)
    optimise(module, speed_level)
    optimised_ir = str(module)
    obj = target_machine().emit_object(module)
    engine = _load_object(obj)
    if entry is not None:
        _write_cache(entry, obj, optimised_ir)
    return CompiledModule(engine, optimised_ir, time.perf_counter() - start, object_code=obj)


def load_object(obj: bytes, ir_text: str | None = None) -> CompiledModule:
    """A CompiledModule from object code made earlier (e.g. found in a cache)."""
    start = time.perf_counter()
    engine = _load_object(obj)
    return CompiledModule(engine, ir_text, time.perf_counter() - start, from_cache=True, object_code=obj)
