"""Monitoring inputs named by one string: a file, a saved profile, a registry profile or a
table version.

:func:`load_input` is what ``mlops monitor profile|drift`` does with each of its
``DATA``, ``REF``, ``CURRENT`` and ``--edges-from`` arguments, so that code which takes
such a name (a scheduled drift job, a guard started from a command line) resolves it
the same way and gets the same errors.

Resolution
----------
1. An existing path is a file: Parquet (``.parquet``, ``.pq``), Arrow/Feather
   (``.arrow``, ``.feather``, ``.ipc``), CSV (``.csv``, ``.csv.gz``), TSV (``.tsv``) or
   a saved profile (``.profile``). Another suffix, or a directory, is an error.
2. A name that does not exist as a path is looked up in the store only when it looks
   like a reference: ``name:vN``, ``name@alias``, or a bare name with no path separator
   and none of the suffixes above. Otherwise (``data/today.parquet``,
   ``today.parquet``) it is a missing file, and the error says so.
3. In the store, a registry artifact of kind ``profile`` gives its profile; otherwise a
   table version of the dataset store gives its table. A registry artifact of another
   kind (a model) is named as such; a name found nowhere gets an error that says both
   that no such file exists and that the store has no such table version or profile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

TABLE_SUFFIXES = (".parquet", ".pq", ".arrow", ".feather", ".ipc", ".csv", ".csv.gz", ".tsv")
PROFILE_SUFFIXES = (".profile",)
_EXPECTED = "a .parquet, .arrow/.feather, .csv/.tsv or .profile file"


@dataclass(frozen=True)
class Input:
    """What :func:`resolve_input` found.

    Attributes
    ----------
    data : pyarrow.Table or Profile
    source : {"file", "table version", "registry profile"}
    ref : str
        The path of a file, or the version a reference resolved to (``"users:v3"`` for
        ``"users@latest"``), so that lineage records the exact version that was read.
    """

    data: object
    source: str
    ref: str


def load_input(spec, store=None):
    """The table or profile that ``spec`` names (see the module docstring).

    Parameters
    ----------
    spec : str or os.PathLike
        A file path, ``name:vN``, ``name@alias`` or a bare dataset or profile name.
    store : str or Store, optional
        The store for references (default ``$MLOPS_HOME`` or ``./.mlops``).

    Returns
    -------
    pyarrow.Table or Profile

    Raises
    ------
    FileNotFoundError
        No such file (and, for a name that looks like a reference, no such table
        version or registry profile, or no store).
    IsADirectoryError
        ``spec`` is a directory.
    ValueError
        A file of an unknown type, a reference to a model or to a version of files.
    """
    return resolve_input(spec, store).data


def resolve_input(spec, store=None) -> Input:
    """:func:`load_input`, also saying where the data came from (an :class:`Input`)."""
    path = os.fspath(spec)
    if not isinstance(path, str):
        raise TypeError(f"input must be a path or a reference string, got {type(spec).__name__}")
    if os.path.exists(path):
        return Input(_read_file(path), "file", path)
    if not looks_like_reference(path):
        raise FileNotFoundError(f"file {path!r} does not exist")
    return _from_store(path, store)


def looks_like_reference(spec: str) -> bool:
    """Whether a name that is not an existing path may name a table version or a registry
    profile: ``name:vN``, ``name@alias`` or a bare name, with no path separator and no
    file suffix that :func:`load_input` reads."""
    if os.sep in spec or (os.altsep and os.altsep in spec) or not spec:
        return False
    return "@" in spec or ":" in spec or not spec.lower().endswith(TABLE_SUFFIXES + PROFILE_SUFFIXES)


def _read_file(path: str):
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path!r} is a directory; expected {_EXPECTED}")
    low = path.lower()
    if low.endswith(PROFILE_SUFFIXES):
        from .profile import Profile

        return Profile.load(path)
    if low.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        # one file, not pq.read_table: that goes through pyarrow.dataset, which imports pandas
        with pq.ParquetFile(path) as f:
            return f.read()
    if low.endswith((".arrow", ".feather", ".ipc")):
        import pyarrow.feather as feather

        return feather.read_table(path)
    if low.endswith((".csv", ".csv.gz", ".tsv")):
        import pyarrow.csv as pacsv

        opts = pacsv.ParseOptions(delimiter="\t") if low.endswith(".tsv") else None
        return pacsv.read_csv(path, parse_options=opts)
    raise ValueError(f"{path!r}: expected {_EXPECTED}")


def _from_store(spec: str, store) -> Input:
    from .. import config
    from ..data import load_table, open_store, resolve, versions
    from ..registry import Registry
    from ..store import UnknownVersion
    from .registry_hooks import load_profile

    try:
        st = open_store(store)
    except FileNotFoundError:
        root = store if store is not None else config.store_root()
        raise FileNotFoundError(f"no file {spec!r}, and no store at {str(root)!r} in which "
                                f"{spec!r} could name a table version or registry profile") \
            from None
    try:
        name = spec.partition("@")[0].partition(":")[0]
        with Registry(st, create=False) as reg:
            kind = next((a["kind"] for a in reg.artifacts() if a["name"] == name), None)
            if kind == "profile":
                mv = reg.get(spec)
                return Input(load_profile(reg, mv), "registry profile", mv.ref)
        try:
            v = resolve(st, spec)
        except (UnknownVersion, ValueError):
            if versions(st, name):
                raise  # the dataset exists: its error names the version or alias it lacks
            if kind is not None:
                raise ValueError(f"{spec!r} is a {kind} in the registry, not a profile or a "
                                 f"table version; give {_EXPECTED}, a registry profile or a "
                                 "table version") from None
            raise FileNotFoundError(f"no file {spec!r}, and no table version or registry "
                                    f"profile named {spec!r} in the store at {st.root}") from None
        if v.to_dict()["format"] != "table":
            raise ValueError(f"{spec!r} is {v.ref}, a version of files, not of a table; give a "
                             f"table version (a table snapshot) or {_EXPECTED}")
        return Input(load_table(v, store=st), "table version", v.ref)
    finally:
        if st is not store:
            st.close()
