"""Buffer planning: intermediate buffers whose lifetimes do not overlap share memory.

The step is a straight-line list of kernel calls, each writing one buffer and reading
some others. A buffer is live from the call that writes it to the last call that reads
it (buffers read at the very end, like update values copied into parameters, live to
the end). Walking the calls in order, each written buffer takes the smallest free
block that fits (or a new one), and blocks return to the free list after their last
reader. A kernel's output never shares a block with its own inputs: outputs are
placed before the inputs of the same call are released (library kernels assume
their pointers do not alias).
"""
from __future__ import annotations

from dataclasses import dataclass, field

ALIGN = 64


@dataclass
class Plan:
    block_sizes: list[int] = field(default_factory=list)      # bytes per block
    block_of: dict[int, int] = field(default_factory=dict)     # buffer id -> block index

    @property
    def total_bytes(self) -> int:
        return sum(self.block_sizes)


def _round(n: int) -> int:
    return max(ALIGN, (n + ALIGN - 1) // ALIGN * ALIGN)


def plan(sizes: dict[int, int], calls: list[tuple[int, list[int]]], live_to_end: set[int]) -> Plan:
    """Assign a block to every buffer in ``sizes`` (bytes).

    ``calls``: (written buffer, read buffers) per kernel call, in order; ids not in ``sizes``
    (inputs, parameters, fresh outputs) are ignored.
    """
    last_read: dict[int, int] = {}
    for i, (_, reads) in enumerate(calls):
        for r in reads:
            last_read[r] = i
    end = len(calls)
    for b in live_to_end:
        last_read[b] = end
    result = Plan()
    free: list[int] = []                       # free block indices
    release_at: dict[int, list[int]] = {}
    for i, (out, reads) in enumerate(calls):
        if out in sizes and out not in result.block_of:
            need = _round(sizes[out])
            fits = [blk for blk in free if result.block_sizes[blk] >= need]
            if fits:
                blk = min(fits, key=lambda k: result.block_sizes[k])
                free.remove(blk)
            else:
                blk = len(result.block_sizes)
                result.block_sizes.append(need)
            result.block_of[out] = blk
            # never read again: free after this call; else after its last reader
            release_at.setdefault(last_read.get(out, i) if last_read.get(out, i) >= i else i, []).append(blk)
        for blk in release_at.pop(i, []):
            free.append(blk)
    return result


def plan_with(block_of: dict[int, int], sizes: dict[int, int]) -> Plan:
    """The plan that puts each buffer in the block ``block_of`` gives it (a plan made for the
    same calls at other sizes: lifetimes do not depend on sizes), each block as large as its
    largest buffer. Raises KeyError when the buffers are not those of ``block_of``."""
    if set(block_of) != set(sizes):
        raise KeyError(f"plan_with: the plan covers other buffers ({sorted(set(block_of) ^ set(sizes))[:5]})")
    n_blocks = max(block_of.values(), default=-1) + 1
    block_sizes = [ALIGN] * n_blocks
    for b, blk in block_of.items():
        block_sizes[blk] = max(block_sizes[blk], _round(sizes[b]))
    return Plan(block_sizes, dict(block_of))
