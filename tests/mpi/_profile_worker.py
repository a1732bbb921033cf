"""Run under ``mpiexec -n N``: every rank profiles its shard with ``comm=``; rank 0 checks.

Rank 0 compares the MPI profile with the single-process profile of the
concatenated shards (every mergeable field equal, moments to 1e-12 relative;
samples equal when they hold every value, else bounded, sorted, drawn from
the data and not rejected by a KS test), checks that all ranks hold the same
profile, and that bad input on one rank raises on every rank instead of
hanging. Exit status 0 when everything matched, 1 otherwise (on every rank).
"""

from __future__ import annotations

import hashlib
import math
import sys
import traceback

import numpy as np
import pyarrow as pa
from _verdict import verdict  # tests/mpi is the directory of this script
from mpi4py import MPI

from engine.monitor.profile import CategoricalColumn, NumericColumn, TextColumn, profile

COMM = MPI.COMM_WORLD
RANK, SIZE = COMM.Get_rank(), COMM.Get_size()
N = 3000
TYPES = {"txt": "text"}


def bounds() -> np.ndarray:
    """Uneven shards: rank r holds rows [b[r], b[r+1]); the last rank's shard is the largest."""
    w = np.arange(1, SIZE + 1, dtype=float)
    return np.concatenate([[0], np.round(np.cumsum(w) / w.sum() * N)]).astype(int)


def global_table() -> pa.Table:
    rng = np.random.default_rng(2024)
    b = bounds()
    shard = np.searchsorted(b, np.arange(N), side="right") - 1
    x = rng.normal(size=N)
    x[rng.random(N) < 0.05] = np.nan
    x[rng.random(N) < 0.02] = np.inf
    x[rng.random(N) < 0.02] = -np.inf
    words = ["hola", "mundo", "привет", "мир", "你好", "世界", "señor", "καλημέρα", ""]
    sparse = rng.normal(size=N)
    return pa.table({
        "x": pa.array(x, mask=rng.random(N) < 0.03),
        "k": pa.array(rng.integers(-100, 100, size=N)),
        "f32": pa.array(rng.gamma(2.0, size=N).astype(np.float32)),
        "color": pa.array(np.array(["red", "green", "blue", "żółty"])[rng.integers(0, 4, N)],
                          mask=rng.random(N) < 0.1),
        "code": pa.array([f"C{v:04d}" for v in rng.integers(0, 600, size=N)]),
        "txt": pa.array([" ".join(rng.choice(words, size=rng.integers(0, 6))) for _ in range(N)]),
        # 40 distinct values per shard: categorical for one rank alone, text for all of them
        "q": pa.array([f"palabra {40 * s + i % 40} y texto" for i, s in enumerate(shard)]),
        "flag": pa.array(rng.random(N) < 0.3),
        # null-typed on rank 0's shard, float elsewhere: ranks must agree on numeric
        "sparse": pa.array(sparse, mask=shard == 0),
    })


def local_table(t: pa.Table) -> pa.Table:
    b = bounds()
    part = t.slice(b[RANK], b[RANK + 1] - b[RANK])
    if RANK == 0:
        part = part.set_column(part.schema.get_field_index("sparse"), "sparse",
                               pa.nulls(part.num_rows))
    return part


def close(a, b, rtol=1e-12) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rtol * max(abs(a), abs(b), 1e-300)


def compare(mpi, single, *, samples_equal: bool) -> list[str]:
    bad = []
    if mpi.n_rows != single.n_rows or list(mpi.columns) != list(single.columns):
        return [f"n_rows/columns differ: {mpi} vs {single}"]
    for name, a in mpi.columns.items():
        b = single[name]
        if a.kind != b.kind:
            bad.append(f"{name}: kind {a.kind} vs {b.kind}")
            continue
        same = [(a.count, a.nulls) == (b.count, b.nulls)]
        if isinstance(a, NumericColumn):
            same += [(a.nans, a.posinf, a.neginf) == (b.nans, b.posinf, b.neginf),
                     close(a.min, b.min, 0), close(a.max, b.max, 0), close(a.mean, b.mean),
                     close(a.m2, b.m2), np.array_equal(a.edges, b.edges, equal_nan=True),
                     np.array_equal(a.hist, b.hist)]
            if samples_equal:
                same.append(np.array_equal(a.sample, b.sample))
        elif isinstance(a, CategoricalColumn):
            same += [list(a.counts.items()) == list(b.counts.items()),
                     (a.other, a.n_distinct, a.truncated) == (b.other, b.n_distinct, b.truncated)]
        elif isinstance(a, TextColumn):
            same += [(a.empty, a.len_min, a.len_max) == (b.empty, b.len_min, b.len_max),
                     close(a.len_mean, b.len_mean), close(a.len_m2, b.len_m2),
                     a.scripts == b.scripts, a.script_values == b.script_values,
                     np.array_equal(a.trigrams, b.trigrams)]
        if not all(same):
            bad.append(f"{name}: {a.to_dict()} != {b.to_dict()} ({same})")
    return bad


def same_on_all_ranks(p) -> list[str]:
    digests = COMM.allgather(hashlib.sha256(p.to_bytes()).hexdigest())
    return [] if len(set(digests)) == 1 else [f"ranks hold different profiles: {digests}"]


def check_exact(t, part) -> list[str]:
    mpi = profile(part, types=TYPES, comm=COMM)
    bad = same_on_all_ranks(mpi)
    if RANK == 0:
        single = profile(t, types=TYPES)
        bad += compare(mpi, single, samples_equal=True)
        if mpi["q"].kind != "text" or mpi["code"].kind != "categorical":
            bad.append(f"inferred kinds: q {mpi['q'].kind}, code {mpi['code'].kind}")
    return bad


def check_bounded(t, part) -> list[str]:
    from scipy import stats

    s = 300
    mpi = profile(part, types=TYPES, sample_size=s, comm=COMM)
    bad = same_on_all_ranks(mpi)
    # a reference's edges fixed for every rank: histograms must be the single-process ones
    ref = profile(global_table().slice(0, 1000), types=TYPES)
    cur = profile(part, types=TYPES, sample_size=s, edges_from=ref, comm=COMM)
    bad += same_on_all_ranks(cur)
    if RANK == 0:
        # edges come from the merged sample: the single process, given those edges, counts the same
        bad += compare(mpi, profile(t, types=TYPES, sample_size=s, edges_from=mpi),
                       samples_equal=False)
        bad += compare(cur, profile(t, types=TYPES, sample_size=s, edges_from=ref),
                       samples_equal=False)
        for name, c in mpi.columns.items():
            if not isinstance(c, NumericColumn):
                continue
            values = t.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
            values = values[~np.isnan(values)]
            ok = (len(c.sample) == min(s, c.count) and len(c.sample_keys) == len(c.sample)
                  and bool(np.all(c.sample[1:] >= c.sample[:-1])) and bool(np.isin(c.sample, values).all()))
            if not ok:
                bad.append(f"{name}: sample not bounded/sorted/drawn from the data")
        for name in ("x", "k", "f32", "sparse"):
            vals = t.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
            vals = vals[np.isfinite(vals)]
            smp = mpi[name].sample[np.isfinite(mpi[name].sample)]
            p = stats.ks_2samp(smp, vals).pvalue
            if p < 1e-3:
                bad.append(f"{name}: merged sample rejected as a sample of the data (KS p={p:.2g})")
    return bad


def check_errors(part) -> list[str]:
    bad = []
    data = part if RANK != SIZE - 1 else "not a table"
    try:
        profile(data, comm=COMM)
        bad.append(f"rank {RANK}: bad input on the last rank did not raise")
    except (TypeError, ValueError) as exc:
        if RANK != SIZE - 1 and f"rank {SIZE - 1}" not in str(exc):
            bad.append(f"rank {RANK}: unexpected message {exc}")
    other = part if RANK != 0 else part.drop_columns(["k"])
    try:
        profile(other, comm=COMM)
        bad.append(f"rank {RANK}: different columns did not raise")
    except ValueError as exc:
        if "different columns" not in str(exc):
            bad.append(f"rank {RANK}: unexpected message {exc}")
    # a value only the last rank cannot read: the column is invalid everywhere, nobody hangs
    vals = ["1.5", "2"] * 5 if RANK != SIZE - 1 else ["1.5", "abc"] * 5
    p = profile({"v": vals}, types={"v": "numeric"}, comm=COMM)
    if p["v"].kind != "invalid" or f"rank {SIZE - 1}" not in p["v"].reason or p["v"].count != 10 * SIZE:
        bad.append(f"rank {RANK}: unreadable values on one rank gave {p['v'].to_dict()}")
    # a string column on one rank, numbers on the others: every rank raises
    col = np.arange(5.0) if RANK != 0 else np.array(["a"] * 5)
    try:
        profile({"m": col}, comm=COMM)
        bad.append(f"rank {RANK}: types differing between ranks did not raise")
    except ValueError as exc:
        if "different types on different ranks" not in str(exc):
            bad.append(f"rank {RANK}: unexpected message {exc}")
    # edges_from that differ between ranks: the merge fails, and every rank says so
    ref = profile({"x": np.arange(10.0) + RANK})
    try:
        profile({"x": np.arange(3.0)}, edges_from=ref, comm=COMM)
        bad.append(f"rank {RANK}: different edges on different ranks did not raise")
    except ValueError as exc:
        if "edges differ" not in str(exc):
            bad.append(f"rank {RANK}: unexpected message {exc}")
    return bad


def main() -> int:
    t = global_table()
    part = local_table(t)
    bad = []
    for check in (lambda: check_exact(t, part), lambda: check_bounded(t, part),
                  lambda: check_errors(part)):
        try:
            bad += check()
        except Exception:
            bad.append(f"rank {RANK}: {traceback.format_exc()}")
    return verdict(COMM, bad)


if __name__ == "__main__":
    sys.exit(main())
