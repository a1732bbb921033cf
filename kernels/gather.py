"""Gathering byte ranges of a buffer (kernel ``gather_ranges``): the chunks a store lacks,
collected from a device buffer for one transfer to the host.

Examples
--------
>>> import numpy as np
>>> gather_ranges(np.arange(10, dtype=np.uint8), [1, 7], [2, 3]).tolist()
[1, 2, 7, 8, 9]
"""

from __future__ import annotations

import numpy as np

from . import _registry, cuda_runtime
from ._registry import register_kernel

register_kernel("gather_ranges", reference=".reference",
                cuda=cuda_runtime.loader(".gather_cuda", "gather_ranges"),
                is_usable_for={"cuda": cuda_runtime.usable})


def gather_ranges(buf, starts, lengths, *, backend: str | None = None):
    """``buf[starts[i]:starts[i] + lengths[i]]`` for every ``i``, concatenated (uint8)."""
    return _registry.call("gather_ranges", buf, np.asarray(starts, np.int64),
                          np.asarray(lengths, np.int64), backend=backend)


__all__ = ["gather_ranges"]
