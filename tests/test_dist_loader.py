"""engine.dist.ShardedLoader: the global order depends on seed, epoch and global batch size
only; each rank takes its slice.

Most tests run in this process with worlds built by hand (``World(rank, size, ...)``
without a communicator: the loader needs none). The reference for the order is the
documented rule itself, written out here: epoch ``e`` is
``default_rng([seed, e]).permutation(n)`` cut into global batches. The last test runs
``mpiexec -n 2`` and ``-n 3`` (tests/mpi/_dist_loader_worker.py): the union of the ranks'
slices of every step is the 1-rank global batch, values included.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

import engine.data as data
import engine.dist.loader as loader_mod
from engine.dist import ShardedLoader, World

try:
    import torch
except ImportError:  # batches are NumPy arrays then; the torch-specific tests skip
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def world(rank: int, size: int) -> World:
    return World(rank, size, rank, size, 0, 1, ("h",), None, 60.0)


def table(n: int) -> pa.Table:
    return pa.table({"x": np.arange(n, dtype=np.float32) * 0.5,
                     "y": (np.arange(n) * 7) % 5,
                     "s": [f"s{i}" for i in range(n)]})


def reference_epoch(n: int, seed: int, epoch: int, gbs: int, drop_last: bool) -> list:
    """The documented order, independently: the epoch's permutation cut into batches."""
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    if drop_last:
        return [perm[b * gbs:(b + 1) * gbs].tolist() for b in range(n // gbs)]
    pad = np.concatenate([perm, np.tile(perm, gbs // n + 1)])  # wrap around the same order
    return [pad[b * gbs:(b + 1) * gbs].tolist() for b in range(-(-n // gbs))]


@pytest.mark.parametrize("n,gbs,drop_last", [(103, 12, True), (96, 12, True), (103, 12, False),
                                             (5, 12, False)])
def test_every_sample_once_per_epoch_across_ranks(n, gbs, drop_last):
    for size in (1, 2, 3, 4):
        loaders = [ShardedLoader(table(n), gbs, seed=3, drop_last=drop_last, world=world(r, size))
                   for r in range(size)]
        spe = loaders[0].steps_per_epoch
        assert spe == (n // gbs if drop_last else -(-n // gbs))
        for epoch in range(3):
            seen = []
            for b in range(spe):
                parts = [ld.indices(epoch * spe + b).tolist() for ld in loaders]
                assert all(len(p) == gbs // size for p in parts)  # equal shards
                seen += [i for p in parts for i in p]
            assert seen == [i for batch in reference_epoch(n, 3, epoch, gbs, drop_last)
                            for i in batch]
            if drop_last:
                assert len(set(seen)) == len(seen) == spe * gbs  # each at most once...
                assert len(seen) == n - n % gbs                 # ...all but the last n % gbs
            else:
                assert set(seen) == set(range(n))               # each at least once
                assert len(seen) == spe * gbs


def test_reshuffled_every_epoch_and_reproducible():
    a = ShardedLoader(table(60), 10, seed=7)
    b = ShardedLoader(table(60), 10, seed=7)
    c = ShardedLoader(table(60), 10, seed=8)
    epochs = [[i for s in range(e * 6, e * 6 + 6) for i in a.global_indices(s).tolist()]
              for e in range(4)]
    assert all(sorted(e) == list(range(60)) for e in epochs)
    assert len({tuple(e) for e in epochs}) == 4                      # a new order each epoch
    assert [a.epoch_of(s) for s in (0, 5, 6, 23, 24)] == [0, 0, 1, 3, 4]
    for s in (0, 7, 23):
        assert np.array_equal(a.global_indices(s), b.global_indices(s))  # same seed
    assert not np.array_equal(a.global_indices(0), c.global_indices(0))  # another seed
    # steps visited out of order give the same answers (the permutation cache)
    assert np.array_equal(a.global_indices(3), b.global_indices(3))
    assert np.array_equal(a.global_indices(20), b.global_indices(20))


def test_global_batches_do_not_depend_on_the_number_of_ranks():
    n, gbs = 91, 12
    one = ShardedLoader(table(n), gbs, seed=11, world=world(0, 1))
    for size in (2, 3, 4, 6):
        ranks = [ShardedLoader(table(n), gbs, seed=11, world=world(r, size)) for r in range(size)]
        for step in (0, 1, 6, 7, 8, 20, 31):
            union = [i for r in ranks for i in r.indices(step).tolist()]
            assert union == one.global_indices(step).tolist()
            assert all(np.array_equal(r.global_indices(step), one.global_indices(step))
                       for r in ranks)
            xs = np.concatenate([np.asarray(r.batch(step)["x"]) for r in ranks])
            assert np.array_equal(xs, np.asarray(one.batch(step)["x"]))
            assert np.array_equal(xs, one.global_indices(step) * 0.5)  # the rows themselves


def test_iterate_from_start_is_the_tail_of_iterate_from_zero():
    ld = ShardedLoader(table(50), 8, seed=2, world=world(1, 2))
    full = list(ld.iterate(0, steps=20))
    assert ld.position == 20
    assert [s for s, _ in full] == list(range(20))
    tail = list(ShardedLoader(table(50), 8, seed=2, world=world(1, 2)).iterate(13, steps=7))
    assert [s for s, _ in tail] == list(range(13, 20))
    for (s1, b1), (s2, b2) in zip(full[13:], tail):
        assert s1 == s2
        assert all(np.array_equal(np.asarray(b1[k]), np.asarray(b2[k])) for k in ("x", "y", "_index"))
        assert b1["s"] == b2["s"]
    # without steps it runs on across epochs until the caller stops
    it = ld.iterate(5)
    got = [next(it)[0] for _ in range(30)]
    assert got == list(range(5, 35)) and ld.position == 35
    assert list(ld.iterate(3, steps=0)) == []


@needs_torch
def test_table_batches():
    vec = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(40, dtype=np.float64)), 2)
    t = pa.table({"x": np.arange(20, dtype=np.float32), "flag": np.arange(20) % 2 == 0,
                  "s": [str(i) for i in range(20)], "v": vec})
    ld = ShardedLoader(t, 6, seed=0, world=world(2, 3))
    b = ld.batch(4)
    idx = ld.indices(4)
    assert sorted(b) == ["_index", "flag", "s", "v", "x"]
    assert b["_index"].dtype == torch.int64 and b["_index"].tolist() == idx.tolist()
    assert b["x"].dtype == torch.float32 and b["x"].tolist() == idx.astype(float).tolist()
    assert b["flag"].dtype == torch.bool and b["flag"].tolist() == (idx % 2 == 0).tolist()
    assert b["s"] == [str(i) for i in idx]
    assert b["v"].shape == (2, 2) and b["v"].tolist() == [[2.0 * i, 2.0 * i + 1] for i in idx]
    only = ShardedLoader(t, 6, seed=0, world=world(2, 3), columns=["v"]).batch(4)
    assert sorted(only) == ["_index", "v"]
    # a collate receives the NumPy batch
    got = ShardedLoader(t, 6, seed=0, world=world(2, 3), collate=lambda d: d).batch(4)
    assert isinstance(got["x"], np.ndarray) and got["x"].tolist() == idx.astype(float).tolist()


def test_without_torch_batches_are_numpy(monkeypatch):
    monkeypatch.setattr(loader_mod, "_torch", lambda: None)
    b = ShardedLoader(table(10), 4, seed=0).batch(1)
    assert isinstance(b["x"], np.ndarray) and isinstance(b["_index"], np.ndarray)
    samples = ShardedLoader(list(range(100, 110)), 4, seed=0).batch(1)
    assert isinstance(samples, list) and len(samples) == 4


class Squares:
    """A map-style dataset: sample i is (array([i, i*i]), i % 3)."""

    def __len__(self):
        return 30

    def __getitem__(self, i):
        return np.array([float(i), float(i * i)]), i % 3


@needs_torch
def test_map_style_dataset():
    ld = ShardedLoader(Squares(), 6, seed=4, world=world(1, 2))
    idx = ld.indices(3)
    x, y = ld.batch(3)  # torch's default_collate: a stacked tensor and a tensor of labels
    assert x.shape == (3, 2) and x[:, 0].tolist() == idx.astype(float).tolist()
    assert y.tolist() == (idx % 3).tolist()
    listed = ShardedLoader(Squares(), 6, seed=4, world=world(1, 2), collate=list).batch(3)
    assert [int(s[0][0]) for s in listed] == idx.tolist()
    assert ld.source_ref is None


def test_dataset_version_source(tmp_path):
    store = str(tmp_path / "store")
    t = table(40)
    v = data.snapshot(t, name="digits", store=store)
    by_ref = ShardedLoader("digits:v1", 8, seed=1, store=store)
    latest = ShardedLoader("digits@latest", 8, seed=1, store=store)
    by_version = ShardedLoader(v, 8, seed=1)
    direct = ShardedLoader(t, 8, seed=1)
    for ld in (by_ref, latest, by_version):
        assert ld.source_ref == "digits:v1" and ld.source_id == v.id
        for step in (0, 4, 9):
            b, want = ld.batch(step), direct.batch(step)
            assert all(np.array_equal(np.asarray(b[k]), np.asarray(want[k])) for k in ("x", "y"))
            assert b["s"] == want["s"]
    assert direct.source_ref is None
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "a.txt").write_text("not a table")
    data.snapshot(tmp_path / "tree", name="files", store=store)
    with pytest.raises(ValueError, match="files, not of a table"):
        ShardedLoader("files:v1", 8, store=store)
    with pytest.raises(Exception, match="digitz"):
        ShardedLoader("digitz:v1", 8, store=store)


def test_state_dict_round_trip_on_another_number_of_ranks():
    a = ShardedLoader(table(70), 12, seed=5, world=world(0, 3))
    for _ in a.iterate(0, steps=9):
        pass
    state = json.loads(json.dumps(a.state_dict()))  # JSON-able
    assert state["position"] == 9 and state["world_size"] == 3 and state["format_version"] == 1
    b = ShardedLoader(table(70), 12, seed=5, world=world(1, 2))
    b.load_state_dict(state)
    assert b.position == 9
    step, batch = next(b.iterate(b.position))
    assert step == 9 and batch["_index"].tolist() == a.global_indices(9)[6:].tolist()


@pytest.mark.parametrize("change,field", [
    (dict(seed=6), "seed"), (dict(global_batch_size=6), "global_batch_size"),
    (dict(n=71), "length"), (dict(drop_last=False), "drop_last")])
def test_load_state_dict_refuses_another_order(change, field):
    state = ShardedLoader(table(70), 12, seed=5).state_dict()
    n = change.pop("n", 70)
    kw = dict(seed=5, global_batch_size=12, drop_last=True) | change
    other = ShardedLoader(table(n), **kw)
    with pytest.raises(ValueError, match=f"{field} saved .*, now .*the number of ranks may differ"):
        other.load_state_dict(state)
    assert other.position == 0


def test_load_state_dict_refuses_bad_states(tmp_path):
    ld = ShardedLoader(table(70), 12, seed=5)
    with pytest.raises(TypeError, match="state must be a dict"):
        ld.load_state_dict([1])
    with pytest.raises(ValueError, match="format_version 99"):
        ld.load_state_dict(ld.state_dict() | {"format_version": 99})
    state = ld.state_dict()
    del state["seed"]
    with pytest.raises(ValueError, match=r"lacks \['seed'\]"):
        ld.load_state_dict(state)
    with pytest.raises(ValueError, match="position"):
        ld.load_state_dict(ld.state_dict() | {"position": -1})
    # another dataset version of the same length
    store = str(tmp_path / "store")
    data.snapshot(table(70), name="t", store=store)
    t2 = table(70).set_column(0, "x", pa.array(np.zeros(70, np.float32)))
    data.snapshot(t2, name="t", store=store)
    saved = ShardedLoader("t:v1", 12, seed=5, store=store).state_dict()
    with pytest.raises(ValueError, match="source_ref saved 't:v1', now 't:v2'"):
        ShardedLoader("t:v2", 12, seed=5, store=store).load_state_dict(saved)
    ShardedLoader(table(70), 12, seed=5).load_state_dict(saved)  # a table given directly: no ref


def test_bad_arguments():
    t = table(20)
    for bad in (0, -4, 2.5, True, "8"):
        with pytest.raises(ValueError, match="global_batch_size must be a positive integer"):
            ShardedLoader(t, bad)
    with pytest.raises(ValueError, match=r"global_batch_size \(10\) must be divisible by the "
                                         r"world size \(3\).*9 or 12"):
        ShardedLoader(t, 10, world=world(0, 3))
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
        ShardedLoader(t, 4, seed=-1)
    with pytest.raises(ValueError, match="drop_last must be True or False"):
        ShardedLoader(t, 4, drop_last="no")
    with pytest.raises(TypeError, match="world must be an engine.dist.World"):
        ShardedLoader(t, 4, world=3)
    with pytest.raises(ValueError, match=r"columns \['z'\] are not in the table"):
        ShardedLoader(t, 4, columns=["x", "z"])
    with pytest.raises(TypeError, match="columns must be a list"):
        ShardedLoader(t, 4, columns="x")
    with pytest.raises(ValueError, match="columns selects the columns of a table"):
        ShardedLoader(Squares(), 4, columns=["x"])
    with pytest.raises(TypeError, match="collate must be callable"):
        ShardedLoader(t, 4, collate=3)
    with pytest.raises(TypeError, match="source must be a dataset version.*got int"):
        ShardedLoader(42, 4)
    with pytest.raises(ValueError, match="the dataset is empty"):
        ShardedLoader(t.slice(0, 0), 4)
    with pytest.raises(ValueError, match="20 samples, fewer than global_batch_size=32.*drop_last=False"):
        ShardedLoader(t, 32)
    with pytest.raises(ValueError, match="'_index'"):
        ShardedLoader(pa.table({"_index": [1, 2, 3, 4]}), 2)
    ld = ShardedLoader(t, 4)
    for call, name in ((lambda: ld.iterate(-1), "start"), (lambda: ld.iterate(0, steps=-2), "steps"),
                       (lambda: ld.indices(-1), "step"), (lambda: ld.epoch_of(1.5), "step")):
        with pytest.raises(ValueError, match=f"{name} must be an integer >= 0"):
            call()


def test_other_table_forms():
    t = table(12)
    rb = t.to_batches()[0]
    chunked = pa.concat_tables([t.slice(0, 5), t.slice(5)])
    want = ShardedLoader(t, 4, seed=9).batch(2)
    for src in (rb, chunked):
        got = ShardedLoader(src, 4, seed=9).batch(2)
        assert got["x"].tolist() == want["x"].tolist() and got["s"] == want["s"]
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"x": np.arange(12, dtype=np.float32) * 0.5})
    assert ShardedLoader(df, 4, seed=9).batch(2)["x"].tolist() == want["x"].tolist()


MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")


@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install 'mlops-engine[mpi]')")
@pytest.mark.parametrize("ranks", [2, 3])
def test_ranks_slices_make_the_one_rank_global_batch_under_mpiexec(ranks):
    pytest.importorskip("mpi4py")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PATH"] = os.path.dirname(MPIEXEC) + os.pathsep + env.get("PATH", "")
    r = subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable,
                        os.path.join(HERE, "mpi", "_dist_loader_worker.py")],
                       capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert f"{ranks} ranks: OK" in r.stdout
