"""Table versions: snapshot a pyarrow.Table or DataFrame, load it back, diff by key, dedup."""

import numpy as np
import pyarrow as pa
import pytest

import engine.data as D
from engine.store import Store


def table(n, seed=0, start=0):
    rng = np.random.default_rng(seed)
    return pa.table({
        "id": np.arange(start, start + n),
        "x": rng.normal(size=n),
        "name": [f"row-{i}" for i in range(start, start + n)],
    })


def store_bytes(root):
    import os

    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root / "packs") for f in fs)


def test_table_round_trip_and_versions(tmp_path):
    store = tmp_path / "s"
    t1 = table(50_000)
    v1 = D.snapshot(t1, "tbl", "first", store=store)
    assert v1.record["format"] == "table" and v1.record["num_rows"] == 50_000
    assert D.load_table("tbl:v1", store=store).equals(t1)
    assert D.snapshot(t1, "tbl", store=store).unchanged


def test_inserted_rows_deduplicate(tmp_path):
    store = tmp_path / "s"
    base = table(200_000, seed=1)
    D.snapshot(base, "tbl", store=store)
    size1 = store_bytes(store)
    mid = 100_000
    t2 = pa.concat_tables([base.slice(0, mid), table(100, seed=2, start=10**7), base.slice(mid)])
    v2 = D.snapshot(t2, "tbl", store=store)
    growth = store_bytes(store) - size1
    assert growth < 0.2 * size1, (growth, size1)  # Parquet CDC + chunk store: most pages reused
    assert D.load_table(v2.ref, store=store).equals(t2)
    d = D.table_diff("tbl:v1", "tbl:v2", key="id", store=store)
    assert d.num_added == 100 and d.num_removed == 0 and d.num_changed == 0


def test_table_diff_by_key_between_versions(tmp_path):
    store = tmp_path / "s"
    t1 = table(1000)
    x = t1.column("x").to_numpy().copy()
    x[[3, 500]] += 1.0
    t2 = t1.set_column(1, "x", pa.array(x)).slice(0, 990)
    t2 = pa.concat_tables([t2, table(5, start=5000)])
    D.snapshot(t1, "t", store=store)
    D.snapshot(t2, "t", store=store)
    d = D.table_diff("t:v1", "t@latest", key="id", store=store)
    assert (d.num_added, d.num_removed, d.num_changed) == (5, 10, 2)
    assert sorted(d.changed.column("id").to_pylist()) == [3, 500]
    mixed = D.table_diff(t1, "t:v2", key="id", store=store)  # a table and a reference
    assert mixed.num_changed == 2


def test_dataframe_input(tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"k": [1, 2, 3], "v": ["a", "b", "c"]})
    v = D.snapshot(df, "df", store=tmp_path / "s")
    assert D.load_table(v.ref, store=tmp_path / "s").column("v").to_pylist() == ["a", "b", "c"]


def test_load_table_of_files_version_is_an_error(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    D.snapshot(tmp_path / "d", "files", store=tmp_path / "s")
    with pytest.raises(ValueError, match="not of a table"):
        D.load_table("files", store=tmp_path / "s")
    assert Store(tmp_path / "s").list_names("dataset") == ["files"]
