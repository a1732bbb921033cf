"""Deterministic sharded loading: every rank takes its slice of the same global batches.

The global order of samples is a function of the seed, the epoch and the global batch
size only, never of the number of ranks:

- epoch ``e`` visits the samples in the order of a permutation drawn from
  ``numpy.random.default_rng([seed, e])`` (reshuffled every epoch, reproducible);
- global step ``s`` is batch ``s % steps_per_epoch`` of epoch ``s // steps_per_epoch``:
  positions ``b * G .. (b + 1) * G - 1`` of that epoch's permutation (``G`` the global
  batch size);
- rank ``r`` of ``R`` takes the ``r``-th of the ``R`` equal slices of global batch ``s``
  (``G`` must be divisible by ``R``).

So every sample is seen exactly once per epoch across the ranks, every rank gets the same
number of samples, and a run that resumes on a different number of ranks (same seed and
global batch size) sees the same global batches: only the slicing changes.

The last incomplete global batch of an epoch (``len % G`` samples) is dropped by default
(``drop_last=True``): those samples are not seen in that epoch, but they are in others,
since every epoch reshuffles. With ``drop_last=False`` it is padded instead, with samples
from the start of the same epoch's permutation (so a few samples are seen twice in that
epoch), and every sample is seen at least once per epoch.

Examples
--------
>>> import pyarrow as pa
>>> from engine.dist import ShardedLoader, World
>>> table = pa.table({"x": [float(i) for i in range(10)], "y": list(range(10))})
>>> rank1 = World(1, 2, 1, 2, 0, 1, ("h",), None, 60.0)   # rank 1 of 2, no communication
>>> loader = ShardedLoader(table, global_batch_size=4, seed=0, world=rank1)
>>> loader.steps_per_epoch, len(loader.indices(0))
(2, 2)
>>> loader.global_indices(0)[2:].tolist() == loader.indices(0).tolist()
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .world import DistError, World, allgather_object, get_world

__all__ = ["ShardedLoader", "STATE_FORMAT"]

#: ``format_version`` of :meth:`ShardedLoader.state_dict`
STATE_FORMAT = 1

# the fields of a state that fix the global order: a resumed loader must match them
_ORDER_FIELDS = ("seed", "global_batch_size", "length", "drop_last")


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def _numeric_columns(table, columns) -> dict:
    """name -> ("array", ndarray) for numeric columns (fixed-size lists of numbers become
    2-D arrays), ("arrow", ChunkedArray) for the rest (batches of those are lists)."""
    import pyarrow as pa

    from ..store.arrow_build import numpy_from_array

    def numeric(t) -> bool:
        return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)

    out = {}
    for name in columns:
        col = table.column(name)
        t = col.type
        if numeric(t) and not (pa.types.is_boolean(t) and col.null_count):
            out[name] = ("array", numpy_from_array(col))
        elif pa.types.is_fixed_size_list(t) and numeric(t.value_type) and col.null_count == 0 \
                and not pa.types.is_boolean(t.value_type):
            flat = [c.flatten() for c in col.chunks]
            values = numpy_from_array(pa.chunked_array(flat, t.value_type))
            out[name] = ("array", values.reshape(len(col), t.list_size))
        else:
            out[name] = ("arrow", col)
    return out


class ShardedLoader:
    """This rank's slices of the global batches of a dataset, the same for any number of ranks.

    Parameters
    ----------
    source : engine.data.Version, str, pyarrow.Table or map-style dataset
        A table version of ``engine.data`` (a ``Version``, or a reference such as
        ``"name:v3"`` or ``"name@latest"`` read from ``store``), an Arrow table (a
        ``RecordBatch`` or pandas DataFrame is converted to one), or any object with
        ``__len__`` and ``__getitem__(int)`` (a torch map-style ``Dataset``).
    global_batch_size : int
        Samples per global step, over all ranks; must be divisible by the world size.
    seed : int, default 0
        Seed of the per-epoch shuffles (epoch ``e`` uses ``default_rng([seed, e])``).
    drop_last : bool, default True
        Drop the last incomplete global batch of each epoch (True) or pad it with
        samples from the start of the epoch's order (False); see the module docstring.
    world : World, optional
        Whose slice to take (default :func:`engine.dist.get_world`). A ``World`` built
        by hand (no ``comm``) is enough: the loader communicates only to check, once,
        that every rank built it with the same settings.
    columns : list of str, optional
        For a table: the columns to load (default all).
    collate : callable, optional
        Builds a batch from this rank's samples. For a map-style dataset it receives the
        list of samples (default ``torch.utils.data.default_collate``, or the list itself
        without torch); for a table, the dict of NumPy arrays (and lists, for non-numeric
        columns) with ``"_index"`` (default: numeric columns as torch tensors).
    store : path, URI or Store, optional
        Where a reference string is resolved (default ``$MLOPS_HOME`` or ``./.mlops``).

    Attributes
    ----------
    source_ref : str or None
        The dataset version read (``"name:v3"``), for the run's inputs; None for a table
        or dataset given directly.
    source_id : str or None
        That version's content id.
    length : int
        Number of samples.
    position : int
        The global step after the last batch :meth:`iterate` handed out (0 at first).

    Examples
    --------
    >>> import pyarrow as pa
    >>> loader = ShardedLoader(pa.table({"x": [0.5] * 8}), global_batch_size=4, seed=1)
    >>> for step, batch in loader.iterate(0, steps=2):     # a world of one
    ...     print(step, sorted(batch), tuple(batch["x"].shape))
    0 ['_index', 'x'] (4,)
    1 ['_index', 'x'] (4,)
    """

    def __init__(self, source, global_batch_size: int, seed: int = 0, *, drop_last: bool = True,
                 world: World | None = None, columns: list[str] | None = None,
                 collate: Callable | None = None, store=None):
        self.global_batch_size = _check_int(global_batch_size, "global_batch_size", 1)
        self.seed = _check_int(seed, "seed", 0)
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last must be True or False, got {drop_last!r}")
        self.drop_last = drop_last
        if world is not None and not isinstance(world, World):
            raise TypeError(f"world must be an engine.dist.World, got {type(world).__name__}")
        self.world = world if world is not None else get_world()
        size = self.world.size
        if self.global_batch_size % size:
            lo = max(size, self.global_batch_size // size * size)
            raise ValueError(
                f"global_batch_size ({self.global_batch_size}) must be divisible by the world "
                f"size ({size}): every rank takes an equal slice of each global batch; use a "
                f"multiple of {size} such as {lo} or {lo + size}")
        if collate is not None and not callable(collate):
            raise TypeError(f"collate must be callable, got {type(collate).__name__}")
        self.collate = collate
        self.source_ref: str | None = None
        self.source_id: str | None = None
        self._cols: dict | None = None
        self._dataset = None
        self._read_source(source, columns, store)
        if self.length == 0:
            raise ValueError("the dataset is empty: a ShardedLoader needs at least one sample")
        if drop_last and self.length < self.global_batch_size:
            raise ValueError(
                f"the dataset has {self.length} samples, fewer than global_batch_size="
                f"{self.global_batch_size}, so drop_last=True leaves no batch; lower "
                "global_batch_size or pass drop_last=False")
        self.local_batch_size = self.global_batch_size // size
        self.steps_per_epoch = (self.length // self.global_batch_size if drop_last
                                else -(-self.length // self.global_batch_size))
        self.position = 0
        self._perm_epoch = -1
        self._perm = np.zeros(0, np.int64)
        self._check_ranks_agree()

    # ------------------------------------------------------------------ the source

    def _read_source(self, source, columns, store) -> None:
        import pyarrow as pa

        table = None
        if isinstance(source, str) or type(source).__name__ == "Version":
            table = self._read_version(source, store)
        elif isinstance(source, pa.Table):
            table = source
        elif isinstance(source, pa.RecordBatch):
            table = pa.Table.from_batches([source])
        elif type(source).__name__ == "DataFrame" and hasattr(source, "columns"):
            table = pa.Table.from_pandas(source, preserve_index=False)
        elif hasattr(source, "__len__") and hasattr(source, "__getitem__"):
            if columns is not None:
                raise ValueError("columns selects the columns of a table; this source is a "
                                 f"map-style dataset ({type(source).__name__})")
            self._dataset = source
            self.length = len(source)
            return
        else:
            raise TypeError("source must be a dataset version (engine.data.Version or a "
                            "reference like 'name:v3'), a pyarrow.Table or a map-style dataset "
                            f"(__len__ and __getitem__), got {type(source).__name__}")
        if columns is None:
            columns = list(table.column_names)
        elif isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
            raise TypeError(f"columns must be a list of column names, got {columns!r}")
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise ValueError(f"columns {missing} are not in the table; it has "
                             f"{list(table.column_names)}")
        if "_index" in columns:
            raise ValueError("the table has a column named '_index', the key under which "
                             "batches hold the sample ids; rename it or leave it out with "
                             "columns=[...]")
        self._cols = _numeric_columns(table, columns)
        self.length = table.num_rows

    def _read_version(self, source, store):
        from .. import data

        if isinstance(source, data.Version):
            st = store if store is not None else source.store
            table = data.load_table(source, store=st)
            v = source
        else:
            st = data.open_store(store)
            try:
                v = data.resolve(st, source)
                table = data.load_table(v, store=st)
            finally:
                if st is not store:
                    st.close()
        self.source_ref, self.source_id = v.ref, v.id
        return table

    def _check_ranks_agree(self) -> None:
        w = self.world
        if w.size == 1 or w.comm is None:
            return
        mine = (self.seed, self.global_batch_size, self.length, self.drop_last, self.source_ref)
        every = allgather_object(mine, "ShardedLoader settings", w)
        odd = [r for r, s in enumerate(every) if s != every[0]]
        if odd:
            names = ("seed", "global_batch_size", "length", "drop_last", "source_ref")
            raise DistError(
                "the ranks built their ShardedLoader with different settings, so their slices "
                "would not add up to the same global batches: "
                + "; ".join(f"rank {r}: {dict(zip(names, s))}" for r, s in enumerate(every)
                            if r == 0 or r in odd))

    # ------------------------------------------------------------------ the order

    def __len__(self) -> int:
        return self.steps_per_epoch

    def epoch_of(self, step: int) -> int:
        """The epoch global step ``step`` belongs to."""
        return _check_int(step, "step", 0) // self.steps_per_epoch

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.length)
            self._perm_epoch = epoch
        return self._perm

    def global_indices(self, step: int) -> np.ndarray:
        """The sample ids of global batch ``step`` (all ranks), in order; int64."""
        step = _check_int(step, "step", 0)
        epoch, b = divmod(step, self.steps_per_epoch)
        perm = self._permutation(epoch)
        g = self.global_batch_size
        lo = b * g
        if lo + g <= self.length:
            return perm[lo:lo + g].astype(np.int64, copy=True)
        return perm[(lo + np.arange(g)) % self.length].astype(np.int64)  # the padded batch

    def indices(self, step: int) -> np.ndarray:
        """This rank's sample ids of global step ``step``: slice ``rank`` of the global batch."""
        r, k = self.world.rank, self.local_batch_size
        return self.global_indices(step)[r * k:(r + 1) * k]

    # ------------------------------------------------------------------ batches

    def batch(self, step: int) -> Any:
        """This rank's batch of global step ``step`` (see ``collate`` for its form)."""
        idx = self.indices(step)
        if self._dataset is not None:
            samples = [self._dataset[int(i)] for i in idx]
            if self.collate is not None:
                return self.collate(samples)
            torch = _torch()
            if torch is None:
                return samples
            from torch.utils.data import default_collate

            return default_collate(samples)
        out: dict = {}
        for name, (kind, values) in self._cols.items():
            if kind == "array":
                out[name] = values[idx]
            else:
                from ..store.arrow_build import array_from_numpy

                out[name] = values.take(array_from_numpy(idx)).to_pylist()
        out["_index"] = idx
        if self.collate is not None:
            return self.collate(out)
        torch = _torch()
        if torch is None:
            return out
        for name, v in out.items():
            if isinstance(v, np.ndarray):
                try:
                    out[name] = torch.from_numpy(v)
                except TypeError:  # a dtype torch has no tensor for: left as NumPy
                    pass
        return out

    def iterate(self, start: int = 0, steps: int | None = None) -> Iterator[tuple[int, Any]]:
        """``(step, batch)`` for global steps ``start, start + 1, ...``, across epochs.

        Parameters
        ----------
        start : int, default 0
            The first global step (what ``Checkpointer.resume`` returns).
        steps : int, optional
            How many steps to yield; default: without end (break out of the loop).
        """
        start = _check_int(start, "start", 0)
        if steps is not None:
            steps = _check_int(steps, "steps", 0)
        return self._iterate(start, None if steps is None else start + steps)

    def _iterate(self, start: int, stop: int | None):
        step = start
        while stop is None or step < stop:
            batch = self.batch(step)
            self.position = step + 1
            yield step, batch
            step += 1

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        """What fixes the global order, and the position (JSON-able)."""
        return {"format_version": STATE_FORMAT, "seed": self.seed,
                "global_batch_size": self.global_batch_size, "length": self.length,
                "drop_last": self.drop_last, "position": self.position,
                "world_size": self.world.size, "source_ref": self.source_ref}

    def load_state_dict(self, state: dict) -> None:
        """Check that ``state`` (from :meth:`state_dict`) describes the same global order,
        and take its position. A different number of ranks is fine.

        Raises
        ------
        ValueError
            The seed, global batch size, dataset length, ``drop_last`` or dataset
            version differ: the resumed run would see other batches.
        """
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict from ShardedLoader.state_dict(), got "
                            f"{type(state).__name__}")
        fmt = state.get("format_version")
        if not isinstance(fmt, int) or fmt > STATE_FORMAT:
            raise ValueError(f"loader state has format_version {fmt!r}; this engine reads "
                             f"{STATE_FORMAT} or older (upgrade mlops-engine)")
        missing = [k for k in _ORDER_FIELDS + ("position",) if k not in state]
        if missing:
            raise ValueError(f"loader state lacks {missing}: not a ShardedLoader.state_dict()")
        mine = self.state_dict()
        fields = list(_ORDER_FIELDS)
        if state.get("source_ref") is not None and self.source_ref is not None:
            fields.append("source_ref")
        diff = [f"{k} saved {state[k]!r}, now {mine[k]!r}" for k in fields if state[k] != mine[k]]
        if diff:
            raise ValueError(
                "the loader state does not match this loader: " + "; ".join(diff) + ". The "
                "global batches depend on the dataset, its length, the seed, the global batch "
                "size and drop_last; resume with the same ones (the number of ranks may differ)")
        self.position = _check_int(state["position"], "state['position']", 0)
