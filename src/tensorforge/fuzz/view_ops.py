"""The view and shape ops of the fuzzer's generator: reshape, transpose, slices, broadcast_to,
concat, expand_dims/squeeze. A mixin of ``generate._Gen`` (kept apart so each file stays short):
each ``op_*`` picks a value from the pool, draws the op's arguments from the generator's random
stream, and adds the result with the shape NumPy gives for the same operation."""
from __future__ import annotations

import numpy as np

from .. import ops as _ops
from .shapes import _factorise


class ViewOps:
    """Methods of ``_Gen`` that build views and shape ops (they use its ``rng``, ``choose``,
    ``leaf``, ``add``, ``pick``, ``coin``, ``on`` and ``_kind``)."""

    def op_reshape(self):
        v = self.choose(self._kind())
        if v is None or 0 in v.shape and "size_zero" not in self.on:
            return None
        size = int(np.prod(v.shape))
        target = _factorise(size, self.rng)
        static = list(target)
        if any(d is None for d in v.t.shape) and target:
            static[int(self.rng.integers(len(target)))] = -1   # the size is known only at call time
        if -1 in static and size == 0:
            return None
        return self.add(_ops.reshape(v.t, tuple(static)), target, v.kind, v.exact, v)

    def op_transpose(self):
        v = self.choose(self._kind(), pred=lambda v: len(v.shape) >= 2)
        if v is None:
            return None
        axes = tuple(int(a) for a in self.rng.permutation(len(v.shape)))
        t = _ops.transpose(v.t, None if self.coin(0.3) else axes)
        axes = tuple(reversed(range(len(v.shape)))) if t.attrs.get("axes") is None else axes
        return self.add(t, tuple(v.shape[a] for a in axes), v.kind, v.exact, v)

    def op_slice(self):
        v = self.choose(self._kind(), pred=lambda v: len(v.shape) >= 1)
        if v is None:
            return None
        index = []
        for d in v.shape:
            roll = self.rng.random()
            if roll < 0.2 and d > 0:
                index.append(int(self.rng.integers(-d, d)))
            elif roll < 0.3:
                index.append(slice(None, None, -1))
            elif roll < 0.75:
                start = int(self.rng.integers(0, d + 1))
                stop = int(self.rng.integers(start, d + 1)) if self.coin(0.8) else None
                if stop is not None and stop == start and "size_zero" not in self.on:
                    stop = None
                index.append(slice(start, stop, int(self.pick([1, 1, 2, 3]))))
            else:
                index.append(slice(None))
        if self.coin(0.15):
            index.insert(int(self.rng.integers(len(index) + 1)), None)
        want = np.zeros(v.shape)[tuple(index)].shape
        if 0 in want and "size_zero" not in self.on:
            return None
        return self.add(v.t[tuple(index)], want, v.kind, v.exact, v)

    def op_broadcast_to(self):
        v = self.choose(self._kind())
        if v is None:
            return None
        # a dim declared None is expanded when it is 1 (a static target of 1 cannot be checked)
        target = tuple(int(self.pick([2, 3])) if d == 1 and (self.coin(0.7) or s is None) else d
                       for d, s in zip(v.shape, v.t.shape))
        if self.coin(0.5) or target == v.shape:
            target = (int(self.pick([2, 3])),) + target
        return self.add(_ops.broadcast_to(v.t, target), target, v.kind, v.exact, v)

    def op_concat(self):
        v = self.choose(self._kind(), pred=lambda v: len(v.shape) >= 1)
        if v is None:
            return None
        axis = int(self.rng.integers(len(v.shape)))
        parts = [v]
        for _ in range(int(self.rng.integers(1, 3))):
            shape = list(v.shape)
            shape[axis] = int(self.pick([1, 2, 3, v.shape[axis]]))
            same = self.choose(v.kind, pred=lambda w: w.shape == v.shape and w is not v)
            parts.append(same if same is not None and self.coin(0.4) else self.leaf(tuple(shape), v.kind))
        self.rng.shuffle(parts)
        shape = list(v.shape)
        shape[axis] = sum(p.shape[axis] for p in parts)
        t = _ops.concat([p.t for p in parts], axis=axis if self.coin(0.7) else axis - len(v.shape))
        return self.add(t, tuple(shape), v.kind, all(p.exact for p in parts), *parts)

    def op_expand_squeeze(self):
        v = self.choose(self._kind())
        if v is None:
            return None
        ones = [i for i, d in enumerate(v.shape) if d == 1 and v.t.shape[i] == 1]
        if ones and self.coin(0.5):
            a = int(self.pick(ones))
            return self.add(_ops.squeeze(v.t, a), v.shape[:a] + v.shape[a + 1:], v.kind, v.exact, v)
        a = int(self.rng.integers(len(v.shape) + 1))
        return self.add(_ops.expand_dims(v.t, a), v.shape[:a] + (1,) + v.shape[a:], v.kind, v.exact, v)
