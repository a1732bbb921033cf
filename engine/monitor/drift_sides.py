"""The two sides of a drift run as profiles: what :func:`engine.monitor.drift` compares.

Either side may be raw data (a ``pyarrow.Table`` or RecordBatch, a pandas
DataFrame, a 2-D NumPy array, a mapping of columns) or a
:class:`~engine.monitor.profile.Profile`. A raw side becomes a
:func:`~engine.monitor.profile.sorted_profile`: its numeric columns are every
value, sorted (so the exact tests see the whole column), and the current side is
binned on the reference's edges.

When the current side is raw, :func:`side_profiles` defers the raw sides' numeric
columns (:class:`~engine.monitor.profile_numeric.DeferredNumericColumn`: kinds
known, values not read), and :func:`engine.monitor.drift_rows.numeric_rows_blocked`
reads them later a block of columns at a time, through :func:`as_profile` on
:func:`column_source` of the data.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .. import config
from .profile import Profile, sorted_profile

__all__ = ["as_profile", "column_source", "side_profiles"]


def as_profile(data, name: str, edges_from=None, columns=None, types=None, bins=10,
               defer=False):
    """``data`` itself if it is a Profile, else its sorted profile (``defer``: numeric
    columns not read). ``name`` (``"reference"`` or ``"current"``) prefixes a TypeError.

    Examples
    --------
    >>> p = as_profile({"x": [3.0, 1.0, 2.0]}, "reference")
    >>> p["x"].sample.tolist(), as_profile(p, "reference") is p
    ([1.0, 2.0, 3.0], True)
    """
    if isinstance(data, Profile):
        return data
    try:
        # Every value, sorted, so the exact tests see the whole column; no more than that.
        return sorted_profile(data, columns=columns, types=types, bins=bins,
                              edges_from=edges_from, defer_numeric=defer)
    except TypeError as exc:
        raise TypeError(f"{name}: {exc}") from None


def side_profiles(reference, current, columns, types, bins):
    """``(ref, cur, blocked)``: the profiles :func:`engine.monitor.drift` compares.

    ``blocked``: the raw sides' numeric columns are deferred, to be read a block
    of columns at a time (see the module docstring); else every column is read
    here. ``columns`` selects the reference's columns; a selected column that raw
    current data lacks is left out of ``cur`` (a finding of the drift run, not an
    error).
    """
    cur_columns = _present(current, columns)
    if config.DRIFT_BLOCK_BYTES is None or isinstance(current, Profile):
        ref = as_profile(reference, "reference", columns=columns, types=types, bins=bins)
        cur = as_profile(current, "current", edges_from=ref, columns=cur_columns, types=types,
                         bins=bins)
        return ref, cur, False
    ref = as_profile(reference, "reference", columns=columns, types=types, bins=bins,
                     defer=True)
    cur = as_profile(current, "current", edges_from=ref, columns=cur_columns, types=types,
                     bins=bins, defer=True)
    return ref, cur, True


def _present(data, columns):
    """The names of ``columns`` that raw ``data`` has (all of them for a 2-D array, whose
    columns ``columns=`` names): a selected column missing from the current data is a
    finding of :func:`engine.monitor.drift`, not an error."""
    if columns is None or isinstance(data, np.ndarray) or isinstance(columns, str):
        return columns
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        have = set(data.column_names)
    elif hasattr(data, "columns") and hasattr(data, "iloc"):  # a pandas DataFrame
        have = {str(c) for c in data.columns}
    elif hasattr(data, "keys"):
        have = set(data.keys())
    else:
        return columns  # not raw data of a known shape: profiling says what is wrong
    return [c for c in columns if c in have]


def column_source(data, columns):
    """Raw data that ``columns=<some names>`` selects from: a 2-D array as a mapping of
    its columns (views: ``columns=`` names a 2-D array's columns, it does not select).

    Examples
    --------
    >>> sorted(column_source(np.zeros((4, 2)), ["a", "b"]))
    ['a', 'b']
    """
    if isinstance(data, np.ndarray) and data.ndim == 2:
        names = list(columns) if columns is not None else [str(j) for j in range(data.shape[1])]
        return {n: data[:, j] for j, n in enumerate(names)}
    return data
