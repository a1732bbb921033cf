"""Fault injection for the dataset store.

Crashes (SIGKILL at random moments), a full disk, a corrupted pack byte, a truncated
index, permission errors, files vanishing mid-snapshot, bad references and concurrent
writers. After each fault the committed versions must be intact and verify-clean, and
the garbage a crash leaves must be exactly what ``gc(grace=0)`` removes.
"""

import errno
import json
import os
import random
import re
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import blake3
import numpy as np
import pytest

import engine.data as D
import engine.data.ingest as ingest
import engine.store.pack as pack_mod
import engine.store.pipeline as pipeline
from engine.store import Store, StoreCorruption
from engine.store.fs import LocalFS
from engine.store.pack import CODEC_RAW, PackWriter, pack_key

SEED = 20240611


# ----------------------------------------------------------------------------- helpers


def digest_tree(root) -> dict:
    """path -> ("file", blake3 hex, mode) or ("link", target) for every file and link."""
    out = {}
    root = os.fspath(root)
    for dp, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(dp, d))]:
            p = os.path.join(dp, name)
            rel = os.path.relpath(p, root).replace(os.sep, "/")
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            else:
                with open(p, "rb") as f:
                    out[rel] = ("file", blake3.blake3(f.read()).hexdigest(),
                                stat.S_IMODE(os.lstat(p).st_mode))
    return out


def checkout_matches(store, ref, expected: dict, dest) -> None:
    """Check ``ref`` out into a fresh ``dest`` and compare it with ``expected`` exactly."""
    shutil.rmtree(dest, ignore_errors=True)
    st = Store(store)
    try:
        D.checkout(ref, dest, store=st)
    finally:
        st.close()  # a Store opened from a path keeps its pack files open (see below)
    got = digest_tree(dest)
    if got != expected:
        missing = sorted(set(expected) - set(got))[:5]
        extra = sorted(set(got) - set(expected))[:5]
        differ = sorted(p for p in set(got) & set(expected) if got[p] != expected[p])[:5]
        pytest.fail(f"{ref} does not check out as snapshotted: missing {missing}, extra {extra}, "
                    f"different {differ}")


def cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def numbers(root, name="ds") -> list[int]:
    return Store(root).list_numbers("dataset", name)


def tmp_files(root) -> list[str]:
    d = os.path.join(root, "tmp")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def unindexed_packs(root) -> list[str]:
    out = []
    for _dp, _, files in os.walk(os.path.join(root, "packs")):
        out += [f for f in files if f.endswith(".pack") and f[:-5] + ".idx" not in files]
    return sorted(out)


def dot_tmp_files(root) -> list[str]:
    return sorted(os.path.relpath(os.path.join(dp, f), root)
                  for dp, _, files in os.walk(root) for f in files
                  if f.startswith(".") and f.endswith(".tmp"))


def referenced_chunks(root) -> set[bytes]:
    """Every chunk id any version uses (its files' chunks and its manifest's chunks)."""
    st = Store(root)
    used = set()
    for name in st.list_names("dataset"):
        for v in D.versions(st, name):
            used |= {bytes.fromhex(c) for c, _ in v.record["manifest"]["chunks"]}
            for chunks in v.manifest().column("chunks").to_pylist():
                used |= {c["id"] for c in chunks or []}
    st.close()
    return used


def dead_packs(root) -> list[str]:
    """Published packs of which no version uses a single chunk."""
    st = Store(root)
    used = referenced_chunks(root)
    return [pid for pid in st.pack_ids()
            if not any(e["id"].tobytes() in used for e in st.read_index(pid))]


def check_records(root) -> None:
    """Every file under datasets/ is a complete JSON version record or a hidden temporary."""
    for dp, _, files in os.walk(os.path.join(root, "datasets")):
        name = os.path.basename(dp)
        for f in files:
            m = re.fullmatch(r"v(\d{8})\.json", f)
            if m is None:
                assert f.startswith(".") and f.endswith(".tmp"), f"stray file {dp}/{f}"
                continue
            with open(os.path.join(dp, f), "rb") as fh:
                rec = json.loads(fh.read())  # a torn record would raise here
            assert (rec["name"], rec["number"]) == (name, int(m.group(1)))


def assert_verify_ok(root) -> D.VerifyReport:
    st = Store(root)
    try:
        rep = D.verify(store=st)
    finally:
        st.close()
    assert rep.ok, rep.problems
    assert rep.problems == []
    return rep


class OsProxy:
    """The ``os`` module with a few functions replaced (for one module's view of ``os``)."""

    def __init__(self, **overrides):
        self.__dict__.update(overrides)

    def __getattr__(self, name):
        return getattr(os, name)


def write_random_tree(root, seed, sizes, n_small=0, small_max=20_000):
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    for i, n in enumerate(sizes):
        with open(os.path.join(root, f"big{i}.bin"), "wb") as f:
            f.write(rng.bytes(int(n)))
    for i in range(n_small):
        d = os.path.join(root, "small", f"d{i % 3}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:03d}.dat"), "wb") as f:
            f.write(rng.bytes(int(rng.integers(100, small_max))))
    return root


# ----------------------------------------------------------------------------- 1. SIGKILL

KILL_CHILD = textwrap.dedent("""
    import sys
    from engine.store import Store
    from engine.data import snapshot
    st = Store(sys.argv[1], pack_max_bytes=1 << 20)
    print("ready", flush=True)
    v = snapshot(sys.argv[2], "ds", store=st)
    print("committed", v.ref, v.id, int(v.unchanged), flush=True)
""")


@pytest.fixture
def fast_dest(tmp_path):
    """A directory for checkouts, in memory (/dev/shm) where there is one: the kill test
    checks out every version after every run, and a tmpfs makes that three times faster."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        d = tempfile.mkdtemp(prefix="mlops-faults-", dir="/dev/shm")
        yield d
        shutil.rmtree(d, ignore_errors=True)
    else:
        yield str(tmp_path / "checkouts")


@pytest.fixture(scope="module")
def base_tree(tmp_path_factory):
    """About 40 MB: eight random files of 1-8 MB, 300 small files, a link (made once)."""
    root = tmp_path_factory.mktemp("kill") / "base"
    rng = np.random.default_rng(SEED)
    write_random_tree(root, SEED, rng.integers(1 << 20, 8 << 20, 8), n_small=300)
    os.symlink("big0.bin", root / "latest")
    return root


def _edit(tree, i) -> None:
    """New data for run ``i``: two big files rewritten, one partly overwritten, 20 small
    files rewritten, one added, one removed."""
    rng = np.random.default_rng(SEED + i)
    bigs = sorted(f for f in os.listdir(tree) if f.startswith("big"))
    for name in rng.choice(bigs, 2, replace=False):
        (tree / name).write_bytes(rng.bytes(int(rng.integers(1 << 20, 8 << 20))))
    name = bigs[int(rng.integers(len(bigs)))]
    size = os.path.getsize(tree / name)
    with open(tree / name, "r+b") as f:
        f.seek(int(rng.integers(0, size - 200_000)))
        f.write(rng.bytes(200_000))
    smalls = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(tree / "small") for f in fs)
    for p in rng.choice(smalls, 21, replace=False)[:20]:
        with open(p, "wb") as f:
            f.write(rng.bytes(int(rng.integers(100, 20_000))))
    os.unlink(smalls[int(rng.integers(len(smalls)))])
    (tree / "small" / f"new{i:03d}.dat").write_bytes(rng.bytes(int(rng.integers(100, 50_000))))


def _run_child(root, src, delay):
    """Run a snapshot in a child; SIGKILL it ``delay`` s after it is ready (None: let it run).

    Returns (returncode, seconds from ready to exit or None if killed, stdout).
    """
    p = subprocess.Popen([sys.executable, "-c", KILL_CHILD, str(root), str(src)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(p.stdout, selectors.EVENT_READ)
            line = p.stdout.readline() if sel.select(60) else ""
        assert line.strip() == "ready", f"child did not start: {line!r} {p.stderr.read()}"
        t0 = time.monotonic()
        try:
            p.wait(timeout=60 if delay is None else delay)
            took = time.monotonic() - t0
        except subprocess.TimeoutExpired:
            if delay is None:
                raise
            os.kill(p.pid, signal.SIGKILL)  # not yet reaped, so the pid is still ours
            took = None  # (it may have finished just before the kill: then rc is 0)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    if p.returncode not in (0, -signal.SIGKILL):
        pytest.fail(f"snapshot child failed with {p.returncode}:\n{err}")
    return p.returncode, took, out


def test_sigkill_at_random_moments_leaves_store_consistent(base_tree, tmp_path, fast_dest):
    root = str(tmp_path / "store")
    Store(root, pack_max_bytes=1 << 20)
    work = [tmp_path / "w0", tmp_path / "w1"]
    for w in work:
        shutil.copytree(base_tree, w, symlinks=True)
    dest = os.path.join(fast_dest, "out")
    rnd = random.Random(SEED)
    expected: dict[str, dict] = {}  # ref -> digest of the tree it was snapshotted from
    durations: list[float] = []
    kills = kills_before_commit = kills_with_tmp_pack = 0
    n_runs = 28
    t_start = time.monotonic()
    for i in range(n_runs):
        src = work[i % 2]
        if i >= 1:
            _edit(src, i)
        want = digest_tree(src)
        before = numbers(root)
        tmp_before = set(tmp_files(root))
        # Runs 0 and 1 calibrate (uninterrupted); then every 5th run is let finish and
        # the others are killed at a random moment spread over a run's duration.
        if i < 2 or i % 5 == 0:
            delay = None
        else:
            ref_t = float(np.mean(durations[-3:]))
            delay = rnd.uniform(0.0, 1.1) * ref_t
        rc, took, out = _run_child(root, src, delay)
        after = numbers(root)
        new = [n for n in after if n not in before]
        assert after[:len(before)] == before, "a committed version disappeared"
        assert len(new) <= 1, f"one run committed {new}"
        if rc == 0:
            assert f"committed ds:v{after[-1]} " in out and out.strip().endswith(" 0"), out
            assert len(new) == 1
            if i >= 1 and took is not None:
                durations.append(took)
        else:
            kills += 1
            kills_before_commit += not new
            kills_with_tmp_pack += bool(set(tmp_files(root)) - tmp_before)
        if new:
            expected[f"ds:v{new[0]}"] = want
        # After every run, killed or not: records are whole, the store verifies, and
        # every version committed so far checks out byte for byte.
        check_records(root)
        rep = assert_verify_ok(root)
        assert rep.versions == len(expected)
        for ref, tree in expected.items():
            checkout_matches(root, ref, tree, dest)
    elapsed = time.monotonic() - t_start

    # The kills really hit runs in flight, also while packs were being written.
    assert kills >= 15, (kills, durations)
    assert kills_before_commit >= 10, (kills_before_commit, durations)
    assert kills_with_tmp_pack >= 3, (kills_with_tmp_pack, durations)
    garbage_tmp = tmp_files(root)
    garbage_packs = set(dead_packs(root))
    assert garbage_tmp and garbage_packs, "no kill left garbage: the kills missed the runs"

    rep = D.gc(store=root, grace=0)
    assert rep.versions_deleted == []
    assert rep.temporaries_removed >= len(garbage_tmp)
    assert rep.packs_deleted >= len(garbage_packs)
    assert tmp_files(root) == []
    assert unindexed_packs(root) == []
    assert dot_tmp_files(root) == []
    assert dead_packs(root) == []
    st = Store(root)
    assert not garbage_packs & set(st.pack_ids())
    assert assert_verify_ok(root).versions == len(expected)
    for ref, tree in expected.items():
        checkout_matches(root, ref, tree, dest)
    assert elapsed < 120, f"{n_runs} runs took {elapsed:.0f} s"


# ----------------------------------------------------------------------------- 2. disk full


@pytest.fixture
def store_v1(tmp_path):
    """A store with 1 MiB packs holding ds:v1, and a second tree with 6 MB of new data."""
    root = str(tmp_path / "store")
    Store(root, pack_max_bytes=1 << 20)
    t1 = write_random_tree(tmp_path / "t1", 1, [1_500_000, 700_000], n_small=20)
    D.snapshot(t1, "ds", store=root)
    t2 = write_random_tree(tmp_path / "t2", 2, [3_000_000, 3_000_000], n_small=20)
    return root, t1, t2


def _assert_failed_cleanly(root, t1, tmp_path):
    """No new version; v1 intact; the store verifies; the aborted pack left nothing in tmp/."""
    assert numbers(root) == [1]
    assert_verify_ok(root)
    checkout_matches(root, "ds:v1", digest_tree(t1), tmp_path / "out")
    assert tmp_files(root) == []
    assert dot_tmp_files(root) == []


def _assert_gc_then_retry_works(root, t1, t2, tmp_path):
    """gc(grace=0) removes what the failed snapshot published; the store still works."""
    D.gc(store=root, grace=0)
    assert unindexed_packs(root) == [] and dead_packs(root) == []
    assert_verify_ok(root)
    v = D.snapshot(t2, "ds", store=root)
    assert v.ref == "ds:v2"
    checkout_matches(root, "ds:v1", digest_tree(t1), tmp_path / "out")
    checkout_matches(root, "ds:v2", digest_tree(t2), tmp_path / "out")


def test_disk_full_while_adding_chunks(store_v1, tmp_path, monkeypatch):
    root, t1, t2 = store_v1
    orig = PackWriter.add
    lock = threading.Lock()
    calls = [0]

    def add(self, *args, **kw):
        with lock:
            calls[0] += 1
            n = calls[0]
        if n > 40:  # about 2.5 MB in: two packs are already published by then
            raise OSError(errno.ENOSPC, "No space left on device")
        return orig(self, *args, **kw)

    with monkeypatch.context() as m:
        m.setattr(PackWriter, "add", add)
        with pytest.raises(OSError) as ei:
            D.snapshot(t2, "ds", store=root)
    assert ei.value.errno == errno.ENOSPC
    assert calls[0] > 40
    assert len(Store(root).pack_ids()) > 0 and dead_packs(root), "no pack was published first"
    _assert_failed_cleanly(root, t1, tmp_path)
    _assert_gc_then_retry_works(root, t1, t2, tmp_path)


def test_disk_full_while_publishing_an_index(store_v1, tmp_path, monkeypatch):
    """The pack publish step fails writing the index of the third pack."""
    root, t1, t2 = store_v1
    orig = LocalFS.write_atomic
    idx_writes = [0]

    def write_atomic(self, key, data, fsync=True):
        if key.endswith(".idx"):
            idx_writes[0] += 1
            if idx_writes[0] >= 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return orig(self, key, data, fsync)

    with monkeypatch.context() as m:
        m.setattr(LocalFS, "write_atomic", write_atomic)
        with pytest.raises(OSError) as ei:
            D.snapshot(t2, "ds", store=root)
    assert ei.value.errno == errno.ENOSPC
    assert idx_writes[0] >= 3
    _assert_failed_cleanly(root, t1, tmp_path)
    assert not unindexed_packs(root), "a pack whose index failed to publish is removed at once"
    _assert_gc_then_retry_works(root, t1, t2, tmp_path)


def test_disk_full_while_committing_the_version_record(store_v1, tmp_path, monkeypatch):
    root, t1, t2 = store_v1

    def create_exclusive(self, key, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(LocalFS, "create_exclusive", create_exclusive)
        with pytest.raises(OSError) as ei:
            D.snapshot(t2, "ds", store=root)
    assert ei.value.errno == errno.ENOSPC
    _assert_failed_cleanly(root, t1, tmp_path)
    assert dead_packs(root), "every pack was published before the record"
    _assert_gc_then_retry_works(root, t1, t2, tmp_path)


def test_disk_full_while_publishing_a_pack_leaves_no_temporary(store_v1, tmp_path, monkeypatch):
    root, t1, t2 = store_v1
    fsyncs = [0]

    def fsync(fd):
        fsyncs[0] += 1
        if fsyncs[0] >= 2:  # the first pack publishes, the second fails
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.fsync(fd)

    with monkeypatch.context() as m:
        m.setattr(pack_mod, "os", OsProxy(fsync=fsync))  # os as PackWriter._publish sees it
        with pytest.raises(OSError) as ei:
            D.snapshot(t2, "ds", store=root)
    assert ei.value.errno == errno.ENOSPC
    assert numbers(root) == [1]
    assert_verify_ok(root)
    assert tmp_files(root) == []  # fails: the packs whose fsync failed are still there


def test_cli_disk_full_on_a_real_tmpfs(tmp_path):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        root = str(mnt / "store")
        Store(root, pack_max_bytes=1 << 20)
        small = write_random_tree(tmp_path / "small", 5, [200_000], n_small=10)
        r = cli("data", "snapshot", small, "--name", "ds", "--store", root)
        assert r.returncode == 0, r.stderr
        big = write_random_tree(tmp_path / "big", 6, [10_000_000, 10_000_000])
        r = cli("data", "snapshot", big, "--name", "ds", "--store", root)
        assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
        assert "No space left" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert numbers(root) == [1]
        assert_verify_ok(root)
        r = cli("data", "verify", "--store", root)
        assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr
        checkout_matches(root, "ds:v1", digest_tree(small), tmp_path / "out")
        # the failed snapshot removed its temporaries and the packs it never published
        assert tmp_files(root) == [] and unindexed_packs(root) == []
        # gc frees what the failed snapshot wrote; then the store takes a version again.
        D.gc(store=root, grace=0)
        assert tmp_files(root) == [] and unindexed_packs(root) == [] and dead_packs(root) == []
        vfs = os.statvfs(mnt)
        assert vfs.f_bfree * vfs.f_frsize > 6 << 20
        (small / "more.bin").write_bytes(b"more" * 1000)
        r = cli("data", "snapshot", small, "--name", "ds", "--store", root)
        assert r.returncode == 0, r.stderr
        assert numbers(root) == [1, 2]
        assert_verify_ok(root)
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


# ----------------------------------------------------------------------------- 3. bad pack byte


def _file_chunks(root, ref, path) -> list[bytes]:
    v = D.resolve(Store(root), ref)
    row = next(r for r in v.manifest().to_pylist() if r["path"] == path)
    return [c["id"] for c in row["chunks"]]


def _version_chunks(root, ref) -> set[bytes]:
    v = D.resolve(Store(root), ref)
    return {c["id"] for chunks in v.manifest().column("chunks").to_pylist() for c in chunks or []}


def _flip_byte(root, chunk_id: bytes) -> tuple[str, int]:
    ref = Store(root).locate(chunk_id)
    path = os.path.join(root, *pack_key(ref.pack_id, "pack").split("/"))
    pos = ref.offset + ref.stored // 2
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x5A]))
    return ref.pack_id, ref.codec


def _assert_checkout_fails_cleanly(root, ref, bad_path, src, dest, chunk_hex):
    with pytest.raises(StoreCorruption) as ei:
        D.checkout(ref, dest, store=root)
    assert chunk_hex in str(ei.value)
    assert not os.path.lexists(dest / bad_path), "a torn file was left in place"
    leftovers = [f for dp, _, fs in os.walk(dest) for f in fs if f.endswith(".mlops-tmp")]
    assert leftovers == [], leftovers
    want = digest_tree(src)
    for rel, d in digest_tree(dest).items():  # whatever was written is complete
        assert d == want[rel], rel


@pytest.fixture
def three_versions(tmp_path):
    """v1 = {a, shared}, v2 = {b, shared}, v3 = {a, shared, c}: a's chunks are in v1 and v3."""
    root = str(tmp_path / "store")
    rng = np.random.default_rng(3)
    a, b, shared, c = (rng.bytes(n) for n in (600_000, 600_000, 1_000_000, 50_000))
    trees = {}
    for n, files in enumerate([{"a.bin": a, "shared.bin": shared},
                               {"b.bin": b, "shared.bin": shared},
                               {"a.bin": a, "shared.bin": shared, "sub/c.bin": c}], 1):
        t = tmp_path / f"t{n}"
        for rel, data in files.items():
            (t / rel).parent.mkdir(parents=True, exist_ok=True)
            (t / rel).write_bytes(data)
        assert D.snapshot(t, "ds", store=root).ref == f"ds:v{n}"
        trees[f"ds:v{n}"] = t
    return root, trees


def test_corrupted_pack_byte_is_found_and_named(three_versions, tmp_path):
    root, trees = three_versions
    cid = _file_chunks(root, "ds:v1", "a.bin")[1]
    assert cid not in _version_chunks(root, "ds:v2") and cid in _version_chunks(root, "ds:v3")
    pid, codec = _flip_byte(root, cid)
    assert codec == CODEC_RAW  # random bytes are stored raw

    rep = D.verify(store=root)
    assert not rep.ok
    assert len(rep.problems) == 1, rep.problems
    p = rep.problems[0]
    assert (p["problem"], p["pack"], p["chunk"]) == ("chunk corrupted", pid, cid.hex())
    assert p["versions"] == ["ds:v1", "ds:v3"]

    r = cli("data", "verify", "--store", root)
    assert r.returncode == 1, r.stdout + r.stderr
    assert pid in r.stdout and cid.hex() in r.stdout
    line = next(ln for ln in r.stdout.splitlines() if "chunk corrupted" in ln)
    assert line.endswith("affects ds:v1, ds:v3"), line
    assert "damaged versions: ds:v1, ds:v3\nintact versions: ds:v2" in r.stdout, r.stdout
    r = cli("data", "verify", "--store", root, "--json")
    assert r.returncode == 1
    rep_json = json.loads(r.stdout)
    assert rep_json["ok"] is False
    assert [(q["pack"], q["chunk"], q["versions"]) for q in rep_json["problems"]] == [
        (pid, cid.hex(), ["ds:v1", "ds:v3"])]

    for ref in ("ds:v1", "ds:v3"):
        _assert_checkout_fails_cleanly(root, ref, "a.bin", trees[ref], tmp_path / ref[-2:],
                                       cid.hex())
    checkout_matches(root, "ds:v2", digest_tree(trees["ds:v2"]), tmp_path / "ok")
    r = cli("data", "checkout", "ds:v1", tmp_path / "cli-out", "--store", root)
    assert r.returncode == 3 and "store error" in r.stderr and cid.hex() in r.stderr, r.stderr


def test_corrupted_byte_in_a_compressed_chunk_is_found(tmp_path):
    root = str(tmp_path / "store")
    lines = "".join(f"{i},{(i * 7919) % 1000},sensor-{i % 13},{(i * 31) % 977 / 10:.1f}\n"
                    for i in range(60_000)).encode()
    t1, t2 = tmp_path / "t1", tmp_path / "t2"
    t1.mkdir()
    t2.mkdir()
    (t1 / "table.csv").write_bytes(lines)
    (t2 / "other.txt").write_bytes(b"something else\n" * 100)
    D.snapshot(t1, "ds", store=root)
    D.snapshot(t2, "ds", store=root)
    st = Store(root)
    chunks = _file_chunks(root, "ds:v1", "table.csv")
    compressed = [c for c in chunks if st.locate(c).codec != CODEC_RAW]
    assert len(compressed) >= 2, "the test data does not compress"
    cid = compressed[len(compressed) // 2]
    pid, codec = _flip_byte(root, cid)
    assert codec != CODEC_RAW

    rep = D.verify(store=root)
    assert not rep.ok
    assert [(p["problem"], p["pack"], p["chunk"], p["versions"]) for p in rep.problems] == [
        ("chunk corrupted", pid, cid.hex(), ["ds:v1"])]
    _assert_checkout_fails_cleanly(root, "ds:v1", "table.csv", t1, tmp_path / "out", cid.hex())
    checkout_matches(root, "ds:v2", digest_tree(t2), tmp_path / "ok")


def test_a_chunk_length_field_is_bounded_before_allocating(tmp_path):
    # issue 15, defect 6: a valid zstd chunk whose raw length says 256 MiB (index and record
    # rewritten consistently, checksum included) used to be allocated in full per worker
    root = str(tmp_path / "store")
    t1 = tmp_path / "t1"
    t1.mkdir()
    (t1 / "table.csv").write_bytes("".join(f"{i},{i % 97},row-{i % 13}\n"
                                           for i in range(60_000)).encode())
    D.snapshot(t1, "ds", store=root)
    st = Store(root)
    cid = next(c for c in _file_chunks(root, "ds:v1", "table.csv")
               if st.locate(c).codec != CODEC_RAW)
    ref = st.locate(cid)
    ikey = pack_key(ref.pack_id, "idx")
    ipath = os.path.join(root, *ikey.split("/"))
    entries = pack_mod.decode_index(open(ipath, "rb").read(), ikey).copy()
    k = int(np.flatnonzero([e.tobytes() == cid for e in entries["id"]])[0])
    entries["raw"][k] = 256 << 20
    os.chmod(ipath, 0o644)
    open(ipath, "wb").write(pack_mod.encode_index(entries))
    ppath = os.path.join(root, *pack_key(ref.pack_id, "pack").split("/"))
    os.chmod(ppath, 0o644)
    with open(ppath, "r+b") as f:  # the record header in the pack says the same
        f.seek(ref.offset - pack_mod.RECORD.size)
        f.write(pack_mod.RECORD.pack(cid, ref.codec, 256 << 20, ref.stored))
    with pytest.raises(StoreCorruption, match="more than the store's largest chunk"):
        Store(root).read_chunk(cid)
    _assert_checkout_fails_cleanly(root, "ds:v1", "table.csv", t1, tmp_path / "out", cid.hex())
    rep = D.verify(store=root)
    (p,) = rep.problems
    assert p["problem"] == "chunk corrupted" and p["chunk"] == cid.hex()
    assert "largest chunk" in p["detail"] and p["versions"] == ["ds:v1"]


def test_truncated_pack_is_found_and_named(tmp_path):
    root = str(tmp_path / "store")
    Store(root, pack_max_bytes=1 << 20)
    t1 = write_random_tree(tmp_path / "t1", 15, [2_500_000])
    t2 = write_random_tree(tmp_path / "t2", 16, [300_000])
    D.snapshot(t1, "ds", store=root)
    D.snapshot(t2, "ds", store=root)
    st = Store(root)
    pid = st.locate(_file_chunks(root, "ds:v1", "big0.bin")[0]).pack_id
    entries = st.read_index(pid)
    last = entries[int(np.argmax(entries["offset"]))]  # the pack's last record
    cid = last["id"].tobytes()
    manifest = {bytes.fromhex(c) for c, _ in D.resolve(st, "ds:v1").record["manifest"]["chunks"]}
    assert not manifest & {e["id"].tobytes() for e in entries}  # the manifest lies elsewhere
    st.close()
    path = os.path.join(root, *pack_key(pid, "pack").split("/"))
    end = int(last["offset"]) + int(last["stored"])
    assert os.path.getsize(path) == end
    os.truncate(path, end - 1000)

    rep = D.verify(store=root)
    assert [(p["problem"], p["pack"], p["chunk"], p["versions"]) for p in rep.problems] == [
        ("chunk corrupted", pid, cid.hex(), ["ds:v1"])]
    assert "truncated" in rep.problems[0]["detail"]
    with pytest.raises(StoreCorruption, match=f"pack {pid} is truncated"):
        D.checkout("ds:v1", tmp_path / "out", store=root)
    assert not os.path.lexists(tmp_path / "out" / "big0.bin")
    checkout_matches(root, "ds:v2", digest_tree(t2), tmp_path / "ok")


# ----------------------------------------------------------------------------- 4. truncated index


@pytest.mark.parametrize("cut", ["half", "last-byte", "empty"])
def test_truncated_index_is_reported_and_named(tmp_path, cut):
    root = str(tmp_path / "store")
    Store(root, pack_max_bytes=1 << 20)
    t1 = write_random_tree(tmp_path / "t1", 7, [2_500_000], n_small=5)
    D.snapshot(t1, "ds", store=root)
    pids = Store(root).pack_ids()
    assert len(pids) >= 3
    pid = pids[1]
    key = pack_key(pid, "idx")
    path = os.path.join(root, *key.split("/"))
    size = os.path.getsize(path)
    os.truncate(path, {"half": size // 2, "last-byte": size - 1, "empty": 0}[cut])

    rep = D.verify(store=root)
    assert not rep.ok
    damaged = [p for p in rep.problems if p["problem"] == "index damaged"]
    assert len(damaged) == 1 and damaged[0]["pack"] == pid, rep.problems
    assert "truncated" in damaged[0]["detail"] and key in damaged[0]["detail"]
    # The chunks that index listed are now unreachable (the manifest's too, if it lay in
    # that pack): every other problem names ds:v1, the one version affected.
    others = [p for p in rep.problems if p["problem"] != "index damaged"]
    assert others, rep.problems
    for p in others:
        assert p["problem"] in ("chunk missing", "manifest unreadable"), p
        assert p.get("versions", [p.get("version")]) == ["ds:v1"], p

    t2 = write_random_tree(tmp_path / "t2", 8, [300_000])
    with pytest.raises(StoreCorruption, match=re.escape(key)):
        D.snapshot(t2, "ds", store=root)
    with pytest.raises(StoreCorruption, match=re.escape(key)):
        D.checkout("ds:v1", tmp_path / "out", store=root)
    assert numbers(root) == [1] and tmp_files(root) == []
    with pytest.raises(StoreCorruption, match=re.escape(key)):
        D.gc(store=root, grace=0)  # gc refuses to work on a damaged store...
    assert os.path.exists(os.path.join(root, *pack_key(pid, "pack").split("/")))  # ...and kept it

    for args in (["checkout", "ds:v1", tmp_path / "cli-out"], ["snapshot", t2, "--name", "ds"]):
        r = cli("data", *args, "--store", root)
        assert r.returncode == 3, (args, r.returncode, r.stderr)
        assert "store error" in r.stderr and key in r.stderr and "Traceback" not in r.stderr
    r = cli("data", "verify", "--store", root)
    assert r.returncode == 1 and "index damaged" in r.stdout and pid in r.stdout, r.stdout
    assert numbers(root) == [1]


# ----------------------------------------------------------------------------- 5., 6. bad input files


@pytest.fixture
def store_and_tree(tmp_path):
    root = str(tmp_path / "store")
    t = write_random_tree(tmp_path / "src", 9, [1_200_000, 300_000], n_small=30)
    D.snapshot(t, "ds", store=root)
    want_v1 = digest_tree(t)
    (t / "sub").mkdir()
    (t / "sub" / "secret.bin").write_bytes(np.random.default_rng(10).bytes(400_000))
    (t / "zz-after.bin").write_bytes(np.random.default_rng(11).bytes(2_000_000))
    return root, t, want_v1


def test_permission_denied_names_the_file(store_and_tree, tmp_path, monkeypatch):
    root, t, want_v1 = store_and_tree
    target = str(t / "sub" / "secret.bin")
    denied = []

    def guarded_open(path, flags, *args, **kw):
        if os.fspath(path) == target:
            denied.append(path)
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return os.open(path, flags, *args, **kw)

    with monkeypatch.context() as m:
        m.setattr(pipeline, "os", OsProxy(open=guarded_open))
        with pytest.raises(PermissionError) as ei:
            D.snapshot(t, "ds", store=root)
    assert denied == [target]
    assert target in str(ei.value) and "permission denied" in str(ei.value).lower()
    assert numbers(root) == [1]
    assert tmp_files(root) == []
    assert_verify_ok(root)
    checkout_matches(root, "ds:v1", want_v1, tmp_path / "out")
    assert D.snapshot(t, "ds", store=root).ref == "ds:v2"  # nothing stuck


def test_file_vanishing_before_it_is_read(store_and_tree, tmp_path, monkeypatch):
    root, t, want_v1 = store_and_tree
    orig = ingest._read_file
    target = "sub/secret.bin"
    seen = []

    def read_file(e, *args, **kw):
        if e.rel == target:
            seen.append(e.rel)
            os.unlink(e.abspath)  # after the walk listed it, before it is opened
        return orig(e, *args, **kw)

    with monkeypatch.context() as m:
        m.setattr(ingest, "_read_file", read_file)
        with pytest.raises(D.FileVanishedError) as ei:
            D.snapshot(t, "ds", store=root)
    assert seen == [target]
    assert isinstance(ei.value, FileNotFoundError)
    assert str(t / "sub" / "secret.bin") in str(ei.value)
    assert numbers(root) == [1]
    assert tmp_files(root) == []
    assert_verify_ok(root)
    checkout_matches(root, "ds:v1", want_v1, tmp_path / "out")
    assert D.snapshot(t, "ds", store=root).ref == "ds:v2"  # the tree without it is fine


# ----------------------------------------------------------------------------- 7. bad references


def test_cli_bad_references_exit_2(tmp_path):
    root = str(tmp_path / "store")
    t = write_random_tree(tmp_path / "src", 12, [100_000])
    vid = D.snapshot(t, "ds", store=root).id
    nomatch = ("0" if vid[0] != "0" else "1") + vid[1:8]
    cases = [
        ("nope:v3", "no version nope:v3"),
        ("ds:v3", "no version ds:v3"),
        ("ds:v1:x", "malformed version reference"),
        ("bad name!:v1", "malformed version reference"),
        ("ds@stable", "unknown alias"),
        (nomatch, f"no version matches '{nomatch}'"),
        (f"ds:{nomatch}", "no version matches"),
    ]
    for ref, msg in cases:
        dest = tmp_path / "dest"
        r = cli("data", "checkout", ref, dest, "--store", root)
        assert r.returncode == 2, (ref, r.returncode, r.stderr)
        assert r.stderr.startswith("mlops data checkout: error: "), (ref, r.stderr)
        assert msg in r.stderr, (ref, r.stderr)
        assert "Traceback" not in r.stderr and r.stdout == ""
        assert not dest.exists(), f"{ref}: dest was created"
    r = cli("data", "diff", "ds:v1", "nope:v1", "--store", root)
    assert r.returncode == 2 and "no version nope:v1" in r.stderr
    r = cli("data", "log", "nope", "--store", root)
    assert r.returncode == 2 and "no dataset named 'nope'" in r.stderr
    r = cli("data", "checkout", vid[:8], tmp_path / "good", "--store", root)  # the control
    assert r.returncode == 0, r.stderr
    assert digest_tree(tmp_path / "good") == digest_tree(t)


# ----------------------------------------------------------------------------- 8. concurrent writers

WRITER_CHILD = textwrap.dedent("""
    import os, sys, time
    from engine.store import Store
    from engine.data import snapshot
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(sys.argv[3]) and time.monotonic() < deadline:
        time.sleep(0.0005)
    st = Store(sys.argv[1], pack_max_bytes=1 << 20)  # the first round also creates it
    v = snapshot(sys.argv[2], "ds", store=st)
    print(v.ref, v.id, flush=True)
""")


def test_concurrent_writers_get_distinct_consecutive_versions(tmp_path):
    root = str(tmp_path / "store")
    rng = np.random.default_rng(13)
    shared = rng.bytes(1_500_000)
    trees = []
    for k in range(3):
        t = write_random_tree(tmp_path / f"src{k}", 100 + k, [1_000_000, 500_000], n_small=10)
        (t / "shared.bin").write_bytes(shared)  # the writers race to store the same chunks
        trees.append(t)
    expected: dict[str, dict] = {}
    for rnd in range(2):
        barrier = tmp_path / f"go{rnd}"
        if rnd:
            for k, t in enumerate(trees):
                (t / "big0.bin").write_bytes(rng.bytes(800_000 + k))
        procs = [subprocess.Popen([sys.executable, "-c", WRITER_CHILD, root, str(t), str(barrier)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for t in trees]
        try:
            for p in procs:
                assert p.stdout.readline().strip() == "ready", p.stderr.read()
            barrier.touch()
            results = [p.communicate(timeout=120) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        for p, (_out, err) in zip(procs, results):
            assert p.returncode == 0, err
        refs = [out.split()[0] for out, _ in results]
        first = 3 * rnd + 1
        assert sorted(refs, key=lambda r: int(r.split(":v")[1])) == [
            f"ds:v{n}" for n in range(first, first + 3)], refs
        for ref, t in zip(refs, trees):
            expected[ref] = digest_tree(t)
    assert numbers(root) == [1, 2, 3, 4, 5, 6]
    vs = D.versions(Store(root), "ds")
    assert [v.parent for v in vs] == [None] + [v.id for v in vs[:-1]]  # one unbroken chain
    assert assert_verify_ok(root).versions == 6
    check_records(root)
    for ref, tree in expected.items():
        checkout_matches(root, ref, tree, tmp_path / "out")
    assert tmp_files(root) == [] and unindexed_packs(root) == []


# ----------------------------------------------------------------------------- resource leaks


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_calls_with_a_store_path_do_not_leak_pack_descriptors(tmp_path):
    root = str(tmp_path / "store")
    Store(root, pack_max_bytes=1 << 20)
    t = write_random_tree(tmp_path / "src", 14, [3_000_000])
    D.snapshot(t, "ds", store=root)
    assert len(Store(root).pack_ids()) >= 3
    D.checkout("ds:v1", tmp_path / "warm", store=root)  # imports, thread pools, ...
    before = _open_fds()
    for k in range(3):
        D.checkout("ds:v1", tmp_path / f"out{k}", store=root)
        D.verify(store=root)
        D.diff("ds:v1", "ds:v1", store=root)
    assert _open_fds() == before


def test_a_damaged_index_does_not_take_out_other_packs(tmp_path):
    # issue 15, defect 4: one bad pack index used to make every checkout fail
    root = str(tmp_path / "store")
    Store(root, pack_max_bytes=1 << 20)
    t1 = write_random_tree(tmp_path / "t1", 11, [1_500_000])
    t2 = write_random_tree(tmp_path / "t2", 12, [1_500_000])
    D.snapshot(t1, "a", store=root)
    before = set(Store(root).pack_ids())
    D.snapshot(t2, "b", store=root)
    pid = sorted(set(Store(root).pack_ids()) - before)[0]  # a pack of b only
    key = pack_key(pid, "idx")
    path = os.path.join(root, *key.split("/"))
    os.chmod(path, 0o644)
    os.truncate(path, os.path.getsize(path) // 2)
    with pytest.warns(UserWarning, match=re.escape(key)):
        checkout_matches(root, "a:v1", digest_tree(t1), tmp_path / "ok")   # other packs: fine
    with pytest.warns(UserWarning), pytest.raises(StoreCorruption) as ei:
        D.checkout("b:v1", tmp_path / "bad", store=root)
    assert key in str(ei.value) and "damaged" in str(ei.value)  # the missing chunk names it
    with pytest.warns(UserWarning), pytest.raises(StoreCorruption, match="not written to"):
        D.snapshot(t1, "c", store=root)  # writers refuse a damaged store
    r = cli("data", "checkout", "a:v1", tmp_path / "cli-ok", "--store", root)
    assert r.returncode == 0 and key in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_damaged_version_record_does_not_hide_the_others(tmp_path):
    # issue 15, defect 4: one bad version record used to break `data log` for its dataset
    root = str(tmp_path / "store")
    t = tmp_path / "t"
    t.mkdir()
    for i in range(3):
        (t / f"f{i}").write_text(str(i))
        D.snapshot(t, "ds", store=root)
    rec = os.path.join(root, "datasets", "ds", "v00000002.json")
    os.chmod(rec, 0o644)
    open(rec, "w").write('{"garbage": ')
    with pytest.warns(UserWarning, match=r"datasets/ds/v00000002\.json is not valid JSON"):
        assert [v.ref for v in D.log("ds", store=root)] == ["ds:v3", "ds:v1"]
    r = cli("data", "log", "ds", "--store", root)
    assert r.returncode == 0 and "ds:v3" in r.stdout and "ds:v1" in r.stdout
    assert "warning" in r.stderr and "v00000002.json" in r.stderr and "Traceback" not in r.stderr
    checkout_matches(root, "ds:v3", digest_tree(t), tmp_path / "out")  # the others check out
