"""Encryption at rest (issue 15): sealed chunks and manifests, keyed chunk ids, keys that
never enter the store, wrong and missing keys refused, damage found by the GCM tag, and
the encrypted format frozen by ``tests/golden/store_v2_encrypted``."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import blake3
import numpy as np
import pyarrow as pa
import pytest

import engine.data as D
import engine.store.store as store_mod
from engine.kernels import CdcParams
from engine.store import Store, StoreCorruption, StoreError, StoreFormatError, crypto
from engine.store.crypto import StoreKeyError
from engine.store.pack import pack_key
from engine.store.pipeline import chunk_bytes, read_file

pytestmark = pytest.mark.skipif(importlib.util.find_spec("cryptography") is None,
                                reason="needs the crypto extra (cryptography)")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "golden"))
import make_store_v1 as golden_plain  # noqa: E402
import make_store_v2_encrypted as golden  # noqa: E402

KEY = bytes(range(100, 132))
OTHER = bytes(range(1, 33))
MARKER = b"PLAINTEXT-MARKER-7f3a9c"
SMALL = CdcParams(avg_size=256, min_size=64, max_size=1024)
# Ids of the golden trees in an encrypted store under the fixture's public key
ENC_V1_ID = "014add4cd0b72876ac8b068a19a8e2484809312173d49d37a629b5ac5877deaf"
ENC_V2_ID = "2a5bc16369f199a27ae6fb7b1fb490b9bd4b9bb95e8d0ccb99a20030ef9b8d64"


@pytest.fixture(autouse=True)
def _no_key_in_env(monkeypatch):
    monkeypatch.delenv("MLOPS_KEY", raising=False)
    monkeypatch.delenv("MLOPS_KEY_FILE", raising=False)


def make_tree(root, seed=0):
    """Compressible and incompressible files (with the marker in both), a small file, an
    empty one, a nested one named after the marker, and a link."""
    rng = np.random.default_rng(seed)
    os.makedirs(root / "nested", exist_ok=True)
    text = b"".join(b"%d,%s,row %d\n" % (i, MARKER, i % 7) for i in range(20_000))
    (root / "text.csv").write_bytes(text)
    noise = bytearray(rng.bytes(600_000))
    noise[300_000:300_000 + len(MARKER)] = MARKER
    (root / "noise.bin").write_bytes(bytes(noise))
    (root / "small.txt").write_bytes(MARKER + b"\n")
    (root / "empty").write_bytes(b"")
    (root / "nested" / (MARKER.decode() + ".txt")).write_bytes(b"named after the marker\n")
    os.symlink("text.csv", root / "link.csv")
    return root


def read_tree(root) -> dict:
    out = {}
    for dp, dirs, files in os.walk(root):
        for f in files + [d for d in dirs if os.path.islink(os.path.join(dp, d))]:
            p = os.path.join(dp, f)
            rel = os.path.relpath(p, root)
            out[rel] = ("link", os.readlink(p)) if os.path.islink(p) else ("file", open(p, "rb").read())
    return out


def all_store_bytes(root) -> dict[str, bytes]:
    return {os.path.join(dp, f): open(os.path.join(dp, f), "rb").read()
            for dp, _, fs in os.walk(root) for f in fs}


def stored_chunks(st: Store):
    """(chunk id, raw bytes, index entry) of every stored chunk."""
    for pid in st.pack_ids():
        for e in st.read_index(pid):
            cid = e["id"].tobytes()
            yield cid, st.read_chunk(cid), e


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "src")


# ----------------------------------------------------------------------------- round trips


def test_directory_round_trip(tree, tmp_path):
    st = Store(tmp_path / "s", encrypt=True, key=KEY)
    assert st.encrypted and st.config["format_version"] == 2
    v = D.snapshot(tree, "ds", store=st)
    out = tmp_path / "out"
    D.checkout("ds:v1", out, store=Store(tmp_path / "s", key=KEY))
    assert read_tree(out) == read_tree(tree)
    rep = D.verify(store=Store(tmp_path / "s", key=KEY))
    assert rep.ok and rep.chunks_checked > 0
    assert D.resolve(Store(tmp_path / "s", key=KEY), "ds@latest").id == v.id


def test_table_round_trip(tmp_path):
    n = 30_000
    t = pa.table({"id": np.arange(n), "x": np.random.default_rng(1).normal(size=n),
                  "tag": [MARKER.decode() + str(i % 5) for i in range(n)]})
    st = Store(tmp_path / "s", encrypt=True, key=KEY)
    v = D.snapshot(t, "tbl", store=st)
    assert v.record["format"] == "table"
    assert D.load_table("tbl:v1", store=Store(tmp_path / "s", key=KEY)).equals(t)
    assert D.snapshot(t, "tbl", store=Store(tmp_path / "s", key=KEY)).unchanged
    assert not any(MARKER in b for b in all_store_bytes(tmp_path / "s").values())


def test_a_chunk_of_the_largest_size_reads_back_despite_the_seal_overhead(tmp_path):
    # incompressible 128 KiB chunks are stored raw: sealed, 28 bytes over the largest chunk
    src = tmp_path / "src"
    src.mkdir()
    (src / "r.bin").write_bytes(np.random.default_rng(3).bytes(4 << 20))
    st = Store(tmp_path / "s", encrypt=True, key=KEY)
    D.snapshot(src, "big", store=st)
    st = Store(tmp_path / "s", key=KEY)
    stored = [int(e["stored"]) for _, _, e in stored_chunks(st)]
    assert max(stored) == st.max_chunk + crypto.OVERHEAD
    D.checkout("big:v1", tmp_path / "out", store=st)
    assert (tmp_path / "out" / "r.bin").read_bytes() == (src / "r.bin").read_bytes()


def test_blob_and_stream_round_trip(tmp_path):
    from engine.store.pipeline import ChunkSink

    st = Store(tmp_path / "s", encrypt=True, key=KEY)
    data = np.random.default_rng(2).bytes(3 << 20) + MARKER * 5000
    with ChunkSink(st) as sink:
        blob = sink.put_bytes(data)
        s = sink.open_stream()
        s.write(data[:1000])
        s.write(data[1000:])
        blob2 = s.close()
    assert blob == blob2
    assert Store(tmp_path / "s", key=KEY).get_blob(blob) == data


# ----------------------------------------------------------------------------- ids and dedup


def test_same_bytes_same_key_same_ids_and_dedup(tree, tmp_path):
    a = D.snapshot(tree, "ds", store=Store(tmp_path / "a", encrypt=True, key=KEY))
    b = D.snapshot(tree, "ds", store=Store(tmp_path / "b", encrypt=True, key=KEY))
    assert a.id == b.id
    ids_a = {c for c, _, _ in stored_chunks(Store(tmp_path / "a", key=KEY))}
    ids_b = {c for c, _, _ in stored_chunks(Store(tmp_path / "b", key=KEY))}
    assert ids_a == ids_b
    # the same bytes again, under another name and a moved copy: nothing new is stored
    copy = tmp_path / "copy"
    shutil.copytree(tree, copy, symlinks=True)
    again = D.snapshot(copy, "other", store=Store(tmp_path / "a", key=KEY))
    assert again.id == a.id and again.record["new_bytes"] == 0


def test_different_key_gives_different_ids(tree, tmp_path):
    a = D.snapshot(tree, "ds", store=Store(tmp_path / "a", encrypt=True, key=KEY))
    b = D.snapshot(tree, "ds", store=Store(tmp_path / "b", encrypt=True, key=OTHER))
    p = D.snapshot(tree, "ds", store=Store(tmp_path / "p"))
    assert len({a.id, b.id, p.id}) == 3
    ids_a = {c for c, _, _ in stored_chunks(Store(tmp_path / "a", key=KEY))}
    ids_b = {c for c, _, _ in stored_chunks(Store(tmp_path / "b", key=OTHER))}
    assert not ids_a & ids_b


def test_chunk_ids_are_keyed_blake3_not_plain_content_hashes(tree, tmp_path):
    st = Store(tmp_path / "s", encrypt=True, key=KEY)
    D.snapshot(tree, "ds", store=st)
    # the documented derivation: BLAKE3 derive_key of the key under the id context
    id_key = blake3.blake3(KEY, derive_key_context="mlops-engine store 2026-12 chunk id key v1").digest()
    assert st.id_key == id_key
    n = 0
    for cid, raw, _ in stored_chunks(Store(tmp_path / "s", key=KEY)):
        assert cid != blake3.blake3(raw).digest()
        assert cid == blake3.blake3(raw, key=id_key).digest()
        n += 1
    assert n > 10
    # the pipeline's hashing-only entry points give the same ids with the store's key
    data = (tree / "noise.bin").read_bytes()
    t = chunk_bytes(data, st.params, key=st.id_key, output="numpy")
    assert read_file(str(tree / "noise.bin"), None, st.params, key=st.id_key).chunks == [
        (bytes(r["id"]), int(r["length"])) for r in t]
    assert bytes(t[0]["id"]) == st.chunk_id(data[:int(t[0]["length"])])


def test_plain_store_is_unchanged(tree, tmp_path):
    st = Store(tmp_path / "p")
    assert not st.encrypted and st.id_key is None and st.max_stored == st.max_chunk
    cfg = json.loads((tmp_path / "p" / "config.json").read_text())
    assert cfg["format_version"] == 1 and "encryption" not in cfg and cfg["hash"] == "blake3-256"
    D.snapshot(tree, "ds", store=st)
    for cid, raw, _ in stored_chunks(Store(tmp_path / "p")):
        assert cid == blake3.blake3(raw).digest()


# ----------------------------------------------------------------------------- nothing leaks


def test_no_plaintext_and_no_key_under_the_store(tree, tmp_path):
    root = tmp_path / "s"
    st = Store(root, encrypt=True, key=KEY)
    D.snapshot(tree, "ds", store=st)
    (tree / "text.csv").write_bytes((tree / "text.csv").read_bytes() + MARKER + b" appended\n")
    D.snapshot(tree, "ds", store=Store(root, key=KEY))
    files = all_store_bytes(root)
    assert any(k.endswith(".pack") for k in files)
    for path, data in files.items():
        assert MARKER not in data, path
        assert MARKER.decode().encode("utf-16-le") not in data, path
        assert KEY not in data and KEY.hex().encode() not in data, path
    # the same data in a plain store does show it: the check above can fail
    D.snapshot(tree, "ds", store=Store(tmp_path / "plain"))
    assert any(MARKER in b for b in all_store_bytes(tmp_path / "plain").values())


# ----------------------------------------------------------------------------- keys


def test_no_key_is_refused_with_the_variables_named(tree, tmp_path):
    D.snapshot(tree, "ds", store=Store(tmp_path / "s", encrypt=True, key=KEY))
    with pytest.raises(StoreKeyError, match=r"encrypted and no key.*MLOPS_KEY_FILE.*MLOPS_KEY"):
        Store(tmp_path / "s")
    with pytest.raises(StoreKeyError, match="MLOPS_KEY_FILE"):
        D.checkout("ds:v1", tmp_path / "out", store=tmp_path / "s")
    assert not (tmp_path / "out").exists()


def test_no_key_creates_no_store(tmp_path):
    with pytest.raises(StoreKeyError, match="no key"):
        Store(tmp_path / "s", encrypt=True)
    assert not (tmp_path / "s" / "config.json").exists()


def test_wrong_key_is_refused(tree, tmp_path):
    D.snapshot(tree, "ds", store=Store(tmp_path / "s", encrypt=True, key=KEY))
    with pytest.raises(StoreKeyError, match="wrong key for store"):
        Store(tmp_path / "s", key=OTHER)
    with pytest.raises(StoreKeyError, match="wrong key"):
        D.log("ds", store=Store(tmp_path / "s", key=KEY.hex()[:-2] + "00"))


def test_key_from_environment(tree, tmp_path, monkeypatch):
    kf = tmp_path / "store.key"
    kf.write_text(KEY.hex() + "\n")
    kf.chmod(0o600)
    monkeypatch.setenv("MLOPS_KEY_FILE", str(kf))
    v = D.snapshot(tree, "ds", store=Store(tmp_path / "s", encrypt=True))
    monkeypatch.delenv("MLOPS_KEY_FILE")
    monkeypatch.setenv("MLOPS_KEY", KEY.hex())
    assert D.resolve(Store(tmp_path / "s"), "ds:v1").id == v.id
    raw = tmp_path / "raw.key"
    raw.write_bytes(KEY)  # 32 raw bytes work too
    raw.chmod(0o600)
    monkeypatch.delenv("MLOPS_KEY")
    assert D.resolve(Store(tmp_path / "s", key_file=raw), "ds:v1").id == v.id
    monkeypatch.setenv("MLOPS_KEY", KEY.hex())
    monkeypatch.setenv("MLOPS_KEY_FILE", str(kf))
    with pytest.raises(StoreKeyError, match="both"):
        Store(tmp_path / "s")


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_key_file_readable_by_others_is_refused(tmp_path):
    kf = tmp_path / "store.key"
    kf.write_text(KEY.hex())
    kf.chmod(0o644)
    with pytest.raises(StoreKeyError, match=r"accessible by group or others.*chmod 600"):
        Store(tmp_path / "s", encrypt=True, key_file=kf)
    assert not (tmp_path / "s").exists()


def test_key_file_inside_the_store_is_refused(tmp_path):
    st = Store(tmp_path / "s", encrypt=True, key=KEY)
    kf = tmp_path / "s" / "store.key"
    kf.write_text(KEY.hex())
    kf.chmod(0o600)
    with pytest.raises(StoreKeyError, match="inside the store"):
        Store(st.root, key_file=kf)


@pytest.mark.parametrize("content,match", [
    (b"abc", "holds 3 bytes"),
    (b"zz" * 32, "hex digits"),
    (KEY + b"\n", "holds 33 bytes"),
])
def test_malformed_key_files_are_refused(tmp_path, content, match):
    kf = tmp_path / "k"
    kf.write_bytes(content)
    kf.chmod(0o600)
    with pytest.raises(StoreKeyError, match=match):
        Store(tmp_path / "s", encrypt=True, key_file=kf)


def test_malformed_keys_are_refused(tmp_path, monkeypatch):
    with pytest.raises(StoreKeyError, match="32 bytes"):
        Store(tmp_path / "s", encrypt=True, key=b"short")
    monkeypatch.setenv("MLOPS_KEY", "not hex")
    with pytest.raises(StoreKeyError, match=r"\$MLOPS_KEY must hold"):
        Store(tmp_path / "s", encrypt=True)


def test_encryption_is_chosen_at_creation(tmp_path):
    Store(tmp_path / "p")
    with pytest.raises(StoreError, match="not encrypted; encryption is chosen"):
        Store(tmp_path / "p", encrypt=True, key=KEY)
    with pytest.raises(StoreError, match="a key was given, but store .* is not encrypted"):
        Store(tmp_path / "p", key=KEY)
    Store(tmp_path / "e", encrypt=True, key=KEY)
    with pytest.raises(StoreError, match="is encrypted"):
        Store(tmp_path / "e", encrypt=False, key=KEY)


def test_an_older_reader_refuses_an_encrypted_store(tmp_path, monkeypatch):
    Store(tmp_path / "e", encrypt=True, key=KEY)
    Store(tmp_path / "p")
    monkeypatch.setattr(store_mod, "FORMAT_VERSION", 1)  # what mlops-engine before issue 15 read
    Store(tmp_path / "p")
    with pytest.raises(StoreFormatError, match="format_version 2, newer than this mlops-engine"):
        Store(tmp_path / "e", key=KEY)


def test_an_edited_config_is_refused(tmp_path):
    Store(tmp_path / "e", encrypt=True, key=KEY)
    cfg_path = tmp_path / "e" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["encryption"]
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(StoreFormatError, match="without an encryption section"):
        Store(tmp_path / "e", key=KEY)


# ----------------------------------------------------------------------------- damage, gc


def _flip(path, pos):
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x01]))


def test_a_flipped_byte_is_found_by_the_gcm_tag_and_named(tree, tmp_path):
    root = tmp_path / "s"
    D.snapshot(tree, "ds", store=Store(root, encrypt=True, key=KEY))
    st = Store(root, key=KEY)
    man = D.resolve(st, "ds:v1").manifest().to_pylist()
    cid = next(r for r in man if r["path"] == "noise.bin")["chunks"][2]["id"]
    ref = st.locate(cid)
    ppath = os.path.join(str(root), *pack_key(ref.pack_id, "pack").split("/"))
    _flip(ppath, ref.offset + ref.stored // 2)  # inside the ciphertext, not the nonce or tag
    with pytest.raises(StoreCorruption, match=f"{cid.hex()}.*AES-GCM tag fails"):
        Store(root, key=KEY).read_chunk(cid)
    rep = D.verify(store=Store(root, key=KEY))
    assert not rep.ok
    (p,) = rep.problems
    assert p["problem"] == "chunk corrupted" and p["chunk"] == cid.hex()
    assert p["path"] == ppath and "AES-GCM tag fails" in p["detail"]
    assert p["versions"] == ["ds:v1"]
    # the other files still read
    D.checkout("ds:v1", tmp_path / "out", store=Store(root, key=KEY), paths=["text.csv"])
    assert (tmp_path / "out" / "text.csv").read_bytes() == (tree / "text.csv").read_bytes()


def test_a_swapped_codec_in_a_record_fails_the_tag(tree, tmp_path):
    # the associated data binds the payload to its record: id, codec and raw length
    root = tmp_path / "s"
    D.snapshot(tree, "ds", store=Store(root, encrypt=True, key=KEY))
    st = Store(root, key=KEY)
    cid, _, e = next(x for x in stored_chunks(st) if int(x[2]["codec"]) == 0)
    c = st.cipher
    payload = st._pread(st.locate(cid).pack_id, int(e["offset"]), int(e["stored"]))
    with pytest.raises(StoreCorruption, match="AES-GCM"):
        c.open(cid, 2, int(e["raw"]), payload)
    with pytest.raises(StoreCorruption, match="AES-GCM"):
        c.open(cid, 0, int(e["raw"]) + 1, payload)
    assert c.open(cid, 0, int(e["raw"]), payload) == st.read_chunk(cid)


def test_gc_repack_keeps_an_encrypted_store_readable(tmp_path):
    root = tmp_path / "s"
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(5)
    (src / "keep.bin").write_bytes(rng.bytes(200_000))
    (src / "drop.bin").write_bytes(rng.bytes(2_000_000))
    D.snapshot(src, "ds", store=Store(root, encrypt=True, key=KEY))
    (src / "drop.bin").unlink()
    D.snapshot(src, "ds", store=Store(root, key=KEY))
    before = {c for c, _, _ in stored_chunks(Store(root, key=KEY))}
    rep = D.gc(store=Store(root, key=KEY), keep_last=1, grace=0)
    assert rep.packs_repacked == 1 and rep.bytes_freed > 1_000_000
    st = Store(root, key=KEY)
    after = {c: e for c, _, e in stored_chunks(st)}
    assert set(after) < before
    assert D.verify(store=st).ok
    D.checkout("ds:v2", tmp_path / "out", store=st)
    assert (tmp_path / "out" / "keep.bin").read_bytes() == (src / "keep.bin").read_bytes()
    assert not any(MARKER in b for b in all_store_bytes(root).values())


def test_registry_content_in_an_encrypted_store(tmp_path, monkeypatch):
    from engine.registry import Registry

    root = tmp_path / "s"
    Store(root, encrypt=True, key=KEY)
    monkeypatch.setenv("MLOPS_KEY", KEY.hex())
    payload = MARKER * 20_000 + np.random.default_rng(4).bytes(100_000)
    reg = Registry(str(root))
    try:
        reg.register("m", payload, params={"lr": 0.1})
        assert reg.read_bytes("m:v1") == payload
        assert reg.verify()["ok"]
    finally:
        reg.close()
    # content (chunks, its manifest) is sealed; commit files are plaintext, by design
    for path, data in all_store_bytes(root).items():
        assert MARKER not in data, path
    monkeypatch.delenv("MLOPS_KEY")
    with pytest.raises(StoreKeyError, match="MLOPS_KEY"):
        Registry(str(root))


# ----------------------------------------------------------------------------- status, CLI


def test_status_of_a_touched_tree_in_an_encrypted_store(tree, tmp_path):
    D.snapshot(tree, "ds", store=Store(tmp_path / "s", encrypt=True, key=KEY))
    st = (tree / "small.txt").stat()
    os.utime(tree / "small.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    d = D.status("ds", tree, store=Store(tmp_path / "s", key=KEY))
    assert d.identical, d.to_dict()


def mlops(*args, env=None):
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})})


def test_cli_encrypt_and_key_file(tree, tmp_path):
    kf = tmp_path / "k"
    kf.write_text(crypto.generate_key().hex())
    kf.chmod(0o600)
    store = str(tmp_path / "s")
    r = mlops("data", "snapshot", str(tree), "-n", "ds", "--store", store, "--encrypt")
    assert r.returncode == 2 and "MLOPS_KEY_FILE" in r.stderr  # a usage error
    assert not os.path.exists(os.path.join(store, "config.json"))
    r = mlops("data", "snapshot", str(tree), "-n", "ds", "--store", store, "--encrypt",
              "--key-file", str(kf), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(open(os.path.join(store, "config.json")).read())["format_version"] == 2
    r = mlops("data", "log", "ds", "--store", store)
    assert r.returncode == 2 and "encrypted and no key" in r.stderr
    r = mlops("data", "checkout", "ds:v1", str(tmp_path / "out"), "--store", store, "--key-file",
              str(kf))
    assert r.returncode == 0, r.stderr
    assert read_tree(tmp_path / "out") == read_tree(tree)
    r = mlops("data", "verify", "--store", store, env={"MLOPS_KEY_FILE": str(kf)})
    assert r.returncode == 0, r.stderr


# ----------------------------------------------------------------------------- golden


@pytest.fixture
def golden_store(tmp_path):
    dst = tmp_path / "store_v2_encrypted"
    shutil.copytree(golden.STORE, dst, symlinks=True)
    return dst


def test_encrypted_config_format(golden_store):
    cfg = json.loads((golden_store / "config.json").read_text())
    assert set(cfg) == {"format", "format_version", "created", "chunking", "hash",
                        "pack_max_bytes", "encryption"}
    assert cfg["format"] == "mlops-engine store" and cfg["format_version"] == 2
    assert cfg["hash"] == "blake3-256-keyed"
    assert cfg["encryption"] == {
        "algorithm": "aes-256-gcm", "id_hash": "blake3-256-keyed", "kdf": "blake3-derive-key",
        "nonce_size": 12, "tag_size": 16,
        "key_check": blake3.blake3(bytes.fromhex(golden.KEY_HEX),
                                   derive_key_context="mlops-engine store 2026-12 key check v1"
                                   ).hexdigest(),
    }


def test_a_new_encrypted_config_has_the_golden_form(tmp_path):
    Store(tmp_path / "s", params=SMALL, pack_max_bytes=8192, encrypt=True, key=golden.KEY_HEX)
    new = json.loads((tmp_path / "s" / "config.json").read_text())
    with open(os.path.join(golden.STORE, "config.json")) as f:
        old = json.load(f)
    new.pop("created")
    old.pop("created")
    assert new == old


def test_golden_encrypted_store_reads_and_verifies(golden_store, tmp_path):
    st = Store(golden_store, create=False, key=golden.KEY_HEX)
    assert [v.ref for v in D.log("golden", store=st)] == ["golden:v2", "golden:v1"]
    assert D.resolve(st, "golden:v1").id == ENC_V1_ID
    assert D.resolve(st, "golden:v2").id == ENC_V2_ID
    rep = D.verify(store=st)
    assert rep.ok and rep.versions == 2
    codecs = {int(c) for pid in st.pack_ids() for c in st.read_index(pid)["codec"]}
    assert 0 in codecs and codecs - {0}, "fixture should hold raw and compressed chunks"
    for ref, make in (("golden:v1", [golden_plain.tree_v1]),
                      ("golden:v2", [golden_plain.tree_v1, golden_plain.tree_v2])):
        expect = tmp_path / f"expect-{ref[-2:]}"
        expect.mkdir()
        for step in make:
            step(str(expect))
        out = tmp_path / f"out-{ref[-2:]}"
        D.checkout(ref, out, store=st)
        assert read_tree(out) == read_tree(expect)
    with pytest.raises(StoreKeyError, match="wrong key"):
        Store(golden_store, key=KEY)


def test_same_tree_gives_the_golden_encrypted_ids_today(tmp_path):
    st = Store(tmp_path / "fresh", params=SMALL, encrypt=True, key=golden.KEY_HEX)
    src = tmp_path / "src"
    src.mkdir()
    golden_plain.tree_v1(str(src))
    assert D.snapshot(src, "again", store=st).id == ENC_V1_ID
    golden_plain.tree_v2(str(src))
    assert D.snapshot(src, "again", store=st).id == ENC_V2_ID


def test_a_store_made_again_at_the_same_path_with_another_key_gets_its_own_stat_cache(tree,
                                                                                      tmp_path):
    from engine.data.statcache import StatCache

    root = tmp_path / "s"
    D.snapshot(tree, "ds", store=Store(root, encrypt=True, key=KEY))
    first = StatCache(Store(root, key=KEY), str(tree)).key
    shutil.rmtree(root)
    other = bytes(range(1, 33))
    D.snapshot(tree, "ds", store=Store(root, encrypt=True, key=other))
    assert StatCache(Store(root, key=other), str(tree)).key != first
    d = D.status("ds", tree, store=Store(root, key=other))
    assert d.identical, d.to_dict()  # ids from the other key's cache would all differ
