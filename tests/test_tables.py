"""engine.data.tables: Arrow conversion, deterministic CDC Parquet bytes and table_diff."""

import datetime as dt
import decimal
import json
import math
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import engine
from engine.data.tables import (
    PARQUET_WRITE_OPTIONS,
    TableDiff,
    as_arrow_table,
    parquet_bytes_to_table,
    table_diff,
    table_to_parquet_bytes,
)

UTC = dt.timezone.utc
NAN = float("nan")

# ----------------------------------------------------------------------------- reference


def _canon(v):
    """A value with NaN replaced by a sentinel, so that == works on rows (and dict keys)."""
    if isinstance(v, float) and math.isnan(v):
        return "<NaN>"
    if isinstance(v, dict):
        return {k: _canon(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_canon(x) for x in v]
    return v


def _same(x, y) -> bool:
    return _canon(x) == _canon(y)  # None == None, NaN == NaN, -0.0 == 0.0


def reference_diff(a: pa.Table, b: pa.Table, key: list[str]):
    """table_diff in plain Python over dicts of rows."""
    values = [c for c in a.column_names if c not in key]
    rows_a, rows_b = a.to_pylist(), b.to_pylist()

    def k(r):
        return tuple(_canon(r[c]) for c in key)

    by_a = {k(r): r for r in rows_a}
    by_b = {k(r): r for r in rows_b}
    assert len(by_a) == len(rows_a) and len(by_b) == len(rows_b)
    added = [r for r in rows_b if k(r) not in by_a]
    removed = [r for r in rows_a if k(r) not in by_b]
    changed, unchanged = [], 0
    counts = dict.fromkeys(values, 0)
    for r in rows_b:
        old = by_a.get(k(r))
        if old is None:
            continue
        diff = [c for c in values if not _same(old[c], r[c])]
        if not diff:
            unchanged += 1
            continue
        for c in diff:
            counts[c] += 1
        row = {c: r[c] for c in key}
        for c in values:
            row[c + "__old"] = old[c]
            row[c + "__new"] = r[c]
        changed.append(row)
    return added, removed, changed, unchanged, counts


def assert_matches_reference(a, b, key):
    d = table_diff(a, b, key)
    added, removed, changed, unchanged, counts = reference_diff(a, b, list(key))
    assert _canon(d.added.to_pylist()) == _canon(added)
    assert _canon(d.removed.to_pylist()) == _canon(removed)
    assert _canon(d.changed.to_pylist()) == _canon(changed)
    assert d.num_unchanged == unchanged
    assert d.column_changes == counts
    assert d.added.schema == b.schema and d.removed.schema == a.schema
    s = d.summary()
    assert (s["rows_a"], s["rows_b"]) == (a.num_rows, b.num_rows)
    assert s["num_added"] + s["num_changed"] + s["num_unchanged"] == b.num_rows
    assert s["num_removed"] + s["num_changed"] + s["num_unchanged"] == a.num_rows
    assert d.has_changes == bool(added or removed or changed)
    return d


# ----------------------------------------------------------------------------- random tables

SCHEMA = pa.schema([
    ("id", pa.int64()),
    ("g", pa.string()),
    ("i", pa.int64()),
    ("f", pa.float64()),
    ("s", pa.string()),
    ("t", pa.timestamp("us", tz="UTC")),
])
POOLS = {  # small pools, so that random edits often restore an equal value
    "i": [None, 0, 1, 2, -7],
    "f": [None, NAN, 0.0, -0.0, 1.5, 2.5, math.inf],
    "s": [None, "", "a", "b", "é"],
    "t": [None, dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC)],
}


def _value(rng, c):
    pool = POOLS[c]
    return pool[rng.integers(len(pool))]


def _table(rows, rng) -> pa.Table:
    t = pa.Table.from_pylist(rows, schema=SCHEMA)
    if t.num_rows > 2:  # several chunks, to exercise chunked arrays
        cut = int(rng.integers(1, t.num_rows))
        t = pa.concat_tables([t.slice(0, cut), t.slice(cut)])
    return t


def random_versions(seed: int, n: int):
    """(a, b): b is a with rows removed, edited, added and shuffled."""
    rng = np.random.default_rng(seed)
    pool = [(i, g) for i in range(2 * n + 2) for g in ("x", "y", "z")]
    picks = rng.permutation(len(pool))
    keys = [pool[j] for j in picks[:n]]
    fresh = [pool[j] for j in picks[n:]]
    rows_a = [{"id": i, "g": g, **{c: _value(rng, c) for c in POOLS}} for i, g in keys]
    rows_b = []
    for r in rows_a:
        u = rng.random()
        if u < 0.2:
            continue  # removed
        r = dict(r)
        if u < 0.6:  # edited (possibly to an equal value)
            for c in POOLS:
                if rng.random() < 0.5:
                    r[c] = _value(rng, c)
        rows_b.append(r)
    n_new = int(rng.integers(0, n // 4 + 2))
    rows_b += [{"id": i, "g": g, **{c: _value(rng, c) for c in POOLS}} for i, g in fresh[:n_new]]
    rows_b = [rows_b[j] for j in rng.permutation(len(rows_b))]
    return _table(rows_a, rng), _table(rows_b, rng)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 50, 400])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("composite", [False, True])
def test_diff_matches_reference(n, seed, composite):
    a, b = random_versions(seed * 1000 + n, n)
    if composite:
        key = ["id", "g"]
    else:  # make id alone unique
        a = a.filter(pc.equal(a["g"], "x"))
        b = b.filter(pc.equal(b["g"], "x"))
        key = "id"
    assert_matches_reference(a, b, [key] if isinstance(key, str) else key)
    # and in the other direction, and against itself
    assert_matches_reference(b, a, [key] if isinstance(key, str) else key)
    d = table_diff(a, a, key)
    assert not d.has_changes and d.num_unchanged == a.num_rows


def test_diff_empty_tables():
    a, _ = random_versions(3, 20)
    empty = a.slice(0, 0)
    d = assert_matches_reference(empty, a, ["id", "g"])
    assert d.num_added == a.num_rows and d.num_removed == 0
    d = assert_matches_reference(a, empty, ["id", "g"])
    assert d.num_removed == a.num_rows and d.num_added == 0
    d = assert_matches_reference(empty, empty, ["id", "g"])
    assert not d.has_changes
    assert d.changed.column_names[:2] == ["id", "g"] and d.changed.num_rows == 0


# ----------------------------------------------------------------------------- value semantics


def test_nulls_nan_and_zero():
    a = pa.table({"k": [1, 2, 3, 4, 5, 6, 7], "x": [None, None, 1.0, NAN, NAN, 0.0, -0.0]})
    b = pa.table({"k": [1, 2, 3, 4, 5, 6, 7], "x": [None, 1.0, None, NAN, 1.0, -0.0, 0.0]})
    d = table_diff(a, b, "k")
    assert d.changed["k"].to_pylist() == [2, 3, 5]
    assert d.num_unchanged == 4
    assert d.changed.column_names == ["k", "x__old", "x__new"]
    assert _canon(d.changed["x__old"].to_pylist()) == [None, 1.0, "<NaN>"]
    assert d.changed["x__new"].to_pylist() == [1.0, None, 1.0]


def test_strings_timestamps_and_order():
    ts = [dt.datetime(2024, 5, d, tzinfo=UTC) for d in (1, 2, 3)]
    a = pa.table({"k": ["a", "b", "c", "d"], "s": ["x", None, "z", ""],
                  "t": pa.array([ts[0], ts[1], None, ts[2]], pa.timestamp("ns", tz="UTC"))})
    b = pa.table({"k": ["e", "d", "c", "a"], "s": ["new", None, "z", "x"],
                  "t": pa.array([ts[0], ts[2], ts[1], ts[0]], pa.timestamp("ns", tz="UTC"))})
    d = table_diff(a, b, ["k"])
    assert d.added.to_pydict()["k"] == ["e"]
    assert d.removed.to_pydict()["k"] == ["b"]
    assert d.changed["k"].to_pylist() == ["d", "c"]  # b's row order
    assert d.column_changes == {"s": 1, "t": 1}
    assert d.changed.schema.field("t__old").type == pa.timestamp("ns", tz="UTC")
    assert d.num_unchanged == 1


def test_float_and_dictionary_keys():
    a = pa.table({"k": [0.0, NAN, 1.5], "v": [1, 2, 3]})
    b = pa.table({"k": [-0.0, NAN, 2.5], "v": [1, 20, 3]})
    d = table_diff(a, b, "k")
    assert d.num_unchanged == 1 and d.num_changed == 1 and d.num_added == 1
    assert math.isnan(d.changed["k"][0].as_py())
    da = pa.table({"k": pa.array(["x", "y"]).dictionary_encode(), "v": [1, 2]})
    db = pa.table({"k": pa.array(["y", "z"]).dictionary_encode(), "v": [3, 4]})
    d = table_diff(da, db, "k")
    assert (d.num_added, d.num_removed, d.num_changed) == (1, 1, 1)


def test_nested_columns():
    st = pa.struct([("p", pa.float64()), ("q", pa.string())])
    a = pa.table({
        "k": [1, 2, 3, 4, 5],
        "st": pa.array([{"p": NAN, "q": "a"}, {"p": 1.0, "q": None}, None, {"p": 1.0, "q": "a"},
                        {"p": 2.0, "q": "b"}], st),
        "l": pa.array([[1.0, NAN], [], None, [1.0], [2.0, None]]),
        "m": pa.array([[("a", 1)], [], None, [("a", 1)], [("b", 2)]], pa.map_(pa.string(), pa.int64())),
        "d": pa.array(["u", "v", "u", "w", None]).dictionary_encode(),
    })
    b = pa.table({
        "k": [1, 2, 3, 4, 5],
        "st": pa.array([{"p": NAN, "q": "a"}, {"p": 1.0, "q": "x"}, None, {"p": 1.0, "q": "a"},
                        {"p": 2.0, "q": "b"}], st),
        "l": pa.array([[1.0, NAN], [], [], [1.0, 2.0], [2.0, None]]),
        "m": pa.array([[("a", 1)], [], None, [("a", 1)], [("b", 3)]], pa.map_(pa.string(), pa.int64())),
        "d": pa.array(["u", "v", "u", "w", "w"]).dictionary_encode(),
    })
    d = assert_matches_reference(a, b, ["k"])
    assert d.changed["k"].to_pylist() == [2, 3, 4, 5]
    assert d.column_changes == {"st": 1, "l": 2, "m": 1, "d": 1}


def test_no_value_columns_and_record_batches():
    a = pa.RecordBatch.from_pydict({"k": [1, 2]})
    b = pa.RecordBatch.from_pydict({"k": [2, 3]})
    d = table_diff(a, b, "k")
    assert (d.num_added, d.num_removed, d.num_changed, d.num_unchanged) == (1, 1, 0, 1)
    assert d.changed.column_names == ["k"] and d.column_changes == {}


def test_column_order_may_differ():
    a = pa.table({"k": [1, 2], "x": [1, 2], "y": ["a", "b"]})
    b = pa.table({"y": ["a", "c"], "x": [1, 2], "k": [1, 2]})
    d = table_diff(a, b, "k")
    assert d.changed.column_names == ["k", "x__old", "x__new", "y__old", "y__new"]
    assert d.column_changes == {"x": 0, "y": 1}


def test_summary_json_and_repr():
    a = pa.table({"k": [1, 2, 3], "f": [NAN, 1.0, 2.0], "b": [b"\x00", b"x", None],
                  "t": pa.array([dt.datetime(2024, 1, 1, tzinfo=UTC)] * 3, pa.timestamp("s", "UTC"))})
    b = pa.table({"k": [1, 2, 4], "f": [NAN, math.inf, 2.0], "b": [b"\x00", b"y", None],
                  "t": pa.array([dt.datetime(2024, 1, 2, tzinfo=UTC)] * 3, pa.timestamp("s", "UTC"))})
    d = table_diff(a, b, "k")
    assert isinstance(d, TableDiff)
    assert repr(d) == "TableDiff(key=('k',), added=1, removed=1, changed=2, unchanged=0)"
    s = d.summary()
    assert s == {"key": ["k"], "rows_a": 3, "rows_b": 3, "num_added": 1, "num_removed": 1,
                 "num_changed": 2, "num_unchanged": 0,
                 "changed_columns": {"f": 1, "b": 1, "t": 2}}
    assert json.loads(d.to_json()) == s
    full = json.loads(d.to_json(rows=True, indent=2))
    assert full["added"] == [{"k": 4, "f": 2.0, "b": None, "t": "2024-01-02T00:00:00+00:00"}]
    assert full["changed"][0]["f__old"] == "NaN"
    assert full["changed"][1]["f__new"] == "Infinity"
    assert full["changed"][1]["b__old"] == "eA=="  # base64 of b"x"


# ----------------------------------------------------------------------------- bad input


def test_bad_key_argument():
    t = pa.table({"k": [1], "v": [1]})
    with pytest.raises(ValueError, match="key must name at least one column"):
        table_diff(t, t, [])
    with pytest.raises(TypeError, match="key"):
        table_diff(t, t, 3)
    with pytest.raises(TypeError, match="key must hold column names"):
        table_diff(t, t, ["k", 1])
    with pytest.raises(ValueError, match="more than once"):
        table_diff(t, t, ["k", "k"])


def test_missing_key_column():
    a = pa.table({"k": [1], "v": [1]})
    b = pa.table({"j": [1], "v": [1]})
    with pytest.raises(KeyError, match="'k' is not in b"):
        table_diff(a, b, "k")
    with pytest.raises(KeyError, match="'j' is not in a"):
        table_diff(a, b, "j")


def test_duplicate_keys():
    a = pa.table({"k": [1, 2, 2, 3, 3], "g": ["x", "y", "y", "z", "z"], "v": [1, 2, 3, 4, 5]})
    ok = pa.table({"k": [1], "g": ["x"], "v": [1]})
    with pytest.raises(ValueError, match=r"a has duplicate keys: k=2 appears 2 times \(and 1 more"):
        table_diff(a, ok, "k")
    with pytest.raises(ValueError, match=r"b has duplicate keys: k=2, g='y' appears 2 times"):
        table_diff(ok, a, ["k", "g"])
    # unique as a composite key
    b = pa.table({"k": [1, 1], "g": ["x", "y"], "v": [1, 2]})
    assert table_diff(ok, b, ["k", "g"]).num_added == 1


def test_null_keys():
    a = pa.table({"k": [1, None], "v": [1, 2]})
    with pytest.raises(ValueError, match="key column 'k' of a has 1 null"):
        table_diff(a, a.slice(0, 1), "k")


def test_schema_mismatch():
    a = pa.table({"k": [1], "x": [1], "y": [1.0]})
    with pytest.raises(ValueError, match="column 'y' is in a but not in b"):
        table_diff(a, pa.table({"k": [1], "x": [1]}), "k")
    with pytest.raises(ValueError, match="column 'z' is in b but not in a"):
        table_diff(a, pa.table({"k": [1], "x": [1], "y": [1.0], "z": [1]}), "k")
    with pytest.raises(ValueError, match="column 'x' is int64 in a but string in b"):
        table_diff(a, pa.table({"k": [1], "x": ["1"], "y": [1.0]}), "k")
    with pytest.raises(ValueError, match="column 'k' is int64 in a but int32 in b"):
        table_diff(a, pa.table({"k": pa.array([1], pa.int32()), "x": [1], "y": [1.0]}), "k")


def test_output_name_clash_and_duplicate_columns():
    a = pa.table({"x__old": [1], "x": [1]})
    with pytest.raises(ValueError, match="two columns named 'x__old'"):
        table_diff(a, a, "x__old")
    dup = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["k", "k"])
    with pytest.raises(ValueError, match="a has duplicate column name 'k'"):
        table_diff(dup, dup, "k")


def test_bad_table_types():
    t = pa.table({"k": [1]})
    with pytest.raises(TypeError, match=r"^a must be a pyarrow.Table, a pyarrow.RecordBatch"):
        table_diff({"k": [1]}, t, "k")
    with pytest.raises(TypeError, match="^b must be"):
        table_diff(t, [1], "k")
    with pytest.raises(TypeError, match=r"^table must be .* got builtins.dict"):
        as_arrow_table({"k": [1]})
    with pytest.raises(TypeError, match="^table must be"):
        table_to_parquet_bytes("not a table")
    with pytest.raises(TypeError, match="^data must be bytes"):
        parquet_bytes_to_table("PAR1")
    with pytest.raises(pa.ArrowInvalid):
        parquet_bytes_to_table(b"not parquet at all")


def test_incomparable_type():
    u = pa.UnionArray.from_sparse(pa.array([0, 1], pa.int8()), [pa.array([1, 2]), pa.array(["a", "b"])])
    a = pa.table({"k": [1, 2], "u": u})
    with pytest.raises(TypeError, match="column 'u'"):
        table_diff(a, a, "k")


# ----------------------------------------------------------------------------- pandas


def test_pandas_not_imported_by_module():
    code = "import sys, engine.data.tables; assert 'pandas' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pandas_input():
    pd = pytest.importorskip("pandas")
    df_a = pd.DataFrame({"id": [1, 2, 3], "x": [1.0, np.nan, 3.0], "s": ["a", "b", None]})
    df_b = pd.DataFrame({"id": [2, 3, 4], "x": [np.nan, 30.0, 4.0], "s": ["b", None, "d"]})
    t = as_arrow_table(df_a)
    assert isinstance(t, pa.Table) and t.column_names == ["id", "x", "s"]
    assert t["id"].to_pylist() == [1, 2, 3]
    d = table_diff(df_a, df_b, "id")
    assert (d.num_added, d.num_removed, d.num_changed, d.num_unchanged) == (1, 1, 1, 1)
    assert d.changed.to_pydict()["id"] == [3]
    back = parquet_bytes_to_table(table_to_parquet_bytes(df_a)).to_pandas()
    pd.testing.assert_frame_equal(back, df_a)
    with pytest.raises(TypeError, match="got pandas"):
        as_arrow_table(df_a["x"])


# ----------------------------------------------------------------------------- parquet bytes


def test_as_arrow_table_passthrough():
    t = pa.table({"a": [1]})
    assert as_arrow_table(t) is t
    batch = pa.RecordBatch.from_pydict({"a": [1, 2]})
    assert as_arrow_table(batch).equals(pa.table({"a": [1, 2]}))


def test_round_trip_types():
    t = pa.table({
        "i8": pa.array([1, None, -3], pa.int8()),
        "u64": pa.array([0, 2**64 - 1, None], pa.uint64()),
        "f": [1.5, NAN, None],
        "b": [True, None, False],
        "s": ["a", None, "é"],
        "ls": pa.array(["x", "y", None], pa.large_string()),
        "bin": [b"\x00\x01", None, b""],
        "ts": pa.array([0, None, 2], pa.timestamp("ns", tz="Europe/Paris")),
        "d": pa.array([0, 1, None], pa.date32()),
        "dec": pa.array([decimal.Decimal("1.25"), None, decimal.Decimal("-3.00")], pa.decimal128(12, 2)),
        "dur": pa.array([1, 2, None], pa.duration("ms")),
        "dict": pa.array(["p", "q", "p"]).dictionary_encode(),
        "lst": pa.array([[1, 2], None, []]),
        "st": pa.array([{"a": 1, "b": "x"}, None, {"a": None, "b": "y"}]),
    }).replace_schema_metadata({"origin": "test"})
    data = table_to_parquet_bytes(t)
    back = parquet_bytes_to_table(data)
    # (list<item> reads back as list<element>, the Parquet name; the types compare equal)
    assert back.schema.equals(t.schema) and back.schema.metadata == t.schema.metadata
    # Table.equals treats NaN != NaN, so the float column "f" is compared on its own with
    # NaN-aware numpy (to_pylist would need pandas for the nanosecond timestamps).
    np.testing.assert_array_equal(back.column("f").to_numpy(zero_copy_only=False),
                                  t.column("f").to_numpy(zero_copy_only=False))
    assert back.drop_columns("f").equals(t.drop_columns("f"))
    for view in (bytearray(data), memoryview(data), pa.py_buffer(data)):
        assert parquet_bytes_to_table(view).drop_columns("f").equals(t.drop_columns("f"))
    keyed = t.append_column("k", pa.array([1, 2, 3]))
    assert not table_diff(keyed, parquet_bytes_to_table(table_to_parquet_bytes(keyed)), "k").has_changes
    empty = t.slice(0, 0)
    assert parquet_bytes_to_table(table_to_parquet_bytes(empty)).equals(empty)


def test_parquet_settings_and_determinism():
    rng = np.random.default_rng(7)
    t = pa.table({"a": rng.integers(0, 10**9, 50_000), "b": rng.normal(size=50_000)})
    data = table_to_parquet_bytes(t)
    assert data == table_to_parquet_bytes(t)  # same table, same bytes
    # whatever the chunk layout in memory
    rechunked = pa.Table.from_batches(t.to_batches(max_chunksize=999))
    assert rechunked.column(0).num_chunks > 1
    assert table_to_parquet_bytes(rechunked) == data
    md = pq.ParquetFile(pa.BufferReader(data)).metadata
    assert md.created_by.startswith("parquet-cpp-arrow version ")
    col = md.row_group(0).column(0)
    assert col.compression == "UNCOMPRESSED"
    assert "RLE_DICTIONARY" not in col.encodings and col.is_stats_set
    assert PARQUET_WRITE_OPTIONS["use_content_defined_chunking"]


# ----------------------------------------------------------------------------- dedup


def _dedup_table(n: int, seed: int, start: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    f = rng.normal(size=n)
    f[rng.random(n) < 0.05] = np.nan
    words = pa.array(["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"])
    names = pc.binary_join_element_wise(
        "user-", pc.cast(pa.array(rng.integers(10**7, 10**8, n)), pa.string()), "")
    return pa.table({
        "id": np.arange(start, start + n, dtype=np.int64),
        "count": rng.integers(0, 1000, n),
        "value": f,
        "label": words.take(pa.array(rng.integers(0, len(words), n))),
        "name": names,
    })


def _shared_fraction(old: bytes, new: bytes) -> float:
    """Share of ``new``'s bytes that lie in store chunks ``old`` already has."""
    co, cn = engine.chunk_bytes(old), engine.chunk_bytes(new)
    known = pc.is_in(cn["id"], value_set=co["id"])
    return pc.sum(pc.filter(cn["length"], known)).as_py() / len(new)


def _write(t: pa.Table, cdc: bool) -> bytes:
    if cdc:
        return table_to_parquet_bytes(t)
    sink = pa.BufferOutputStream()
    pq.write_table(t, sink, **{**PARQUET_WRITE_OPTIONS, "use_content_defined_chunking": False})
    return sink.getvalue().to_pybytes()


def test_cdc_parquet_deduplicates_inserts_and_appends():
    base = _dedup_table(200_000, 1)
    inserted = pa.concat_tables(
        [base.slice(0, 100_000), _dedup_table(100, 2, start=10**7), base.slice(100_000)])
    appended = pa.concat_tables([base, _dedup_table(1_000, 3, start=200_000)])
    shares = {}
    for cdc in (True, False):
        old = _write(base, cdc)
        shares[cdc] = (_shared_fraction(old, _write(inserted, cdc)),
                       _shared_fraction(old, _write(appended, cdc)))
        print(f"parquet cdc={cdc!s:5}: {len(old) / 1e6:.2f} MB; bytes of the new version in "
              f"old chunks: insert 100 rows {shares[cdc][0]:.1%}, append 1000 rows "
              f"{shares[cdc][1]:.1%}")
    ins, app = shares[True]
    # measured with pyarrow 26: 95.2% and 94.6% (without CDC: 74.2% and 95.6%);
    # 92-96% and 93-95% over other seeds
    assert ins >= 0.80, ins
    assert app >= 0.80, app
