"""The content-addressed chunk store: config, chunk index, chunk reads, blobs, version records."""

from __future__ import annotations

import datetime as _dt
import hmac
import json
import os
import re
import threading
import warnings
from dataclasses import dataclass

import blake3
import numpy as np

from ..env import current as current_env
from ..kernels.cdc import CdcParams
from . import crypto
from .crypto import OVERHEAD
from .errors import StoreCorruption, StoreError, StoreFormatError, UnknownVersion
from .fs import LocalFS, open_fs
from .pack import (
    ENTRY_DTYPE,
    PackWriter,
    ParallelPackWriter,
    compress,
    decode_index,
    decompress,
    pack_key,
)
from .pipeline import ChunkSink

#: The newest store format this mlops-engine reads. A plain store is written with
#: format_version 1 (unchanged); an encrypted one with 2, which older readers refuse.
FORMAT_VERSION = 2
PLAIN_FORMAT_VERSION = 1
ENCRYPTED_FORMAT_VERSION = 2
#: The newest version record format this mlops-engine reads.
RECORD_FORMAT_VERSION = 1
CONFIG_KEY = "config.json"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def who() -> dict:
    """Who, where and under which job a commit is made (the audit fields)."""
    return current_env().audit()


def check_name(name, what: str = "name") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(
            f"{what} must be 1-128 characters of letters, digits, '.', '_' or '-', starting "
            f"with a letter or digit; got {name!r}"
        )
    return name


def ids_to_array(ids) -> np.ndarray:
    """A list of 32-byte ids (or an (n, 32) uint8 array) as an (n, 32) uint8 array."""
    if isinstance(ids, np.ndarray):
        return ids.reshape(-1, 32)
    return np.frombuffer(b"".join(ids), dtype=np.uint8).reshape(-1, 32)


def _prefix(ids: np.ndarray) -> np.ndarray:
    """First 8 bytes of each id as a big-endian uint64 (sorts like the bytes)."""
    return np.ascontiguousarray(ids[:, :8]).view(">u8").ravel().astype(np.uint64)


# Entries as opaque 56-byte records: concatenating and inserting them this way skips
# NumPy's per-array field promotion of structured dtypes (12x faster for 150 packs).
_RECORD = np.dtype((np.void, ENTRY_DTYPE.itemsize))


def _sorted_level(parts: list[tuple[int, np.ndarray]]):
    """(entries, pack numbers, id prefixes) of ``parts``, sorted by prefix."""
    if parts:
        ent = np.concatenate([np.ascontiguousarray(e).view(_RECORD) for _, e in parts]).view(ENTRY_DTYPE)
        pno = np.repeat(np.array([i for i, _ in parts], np.int32), [len(e) for _, e in parts])
    else:
        ent, pno = np.zeros(0, ENTRY_DTYPE), np.zeros(0, np.int32)
    pre = _prefix(ent["id"]) if len(ent) else np.zeros(0, np.uint64)
    order = np.argsort(pre, kind="stable")
    return ent[order], pno[order], pre[order]


def _merge_levels(into, new):
    """Sorted level ``into`` with the sorted level ``new`` inserted: one pass of copies
    over ``into`` (no sort of it), so adding a pack to a level costs its size in memmove."""
    if not len(into[0]):
        return new
    if not len(new[0]):
        return into
    pos = np.searchsorted(into[2], new[2], side="right")
    ent = np.insert(into[0].view(_RECORD), pos, new[0].view(_RECORD)).view(ENTRY_DTYPE)
    return ent, np.insert(into[1], pos, new[1]), np.insert(into[2], pos, new[2])


def _search(prefix: np.ndarray, entries: np.ndarray, q: np.ndarray, qp: np.ndarray) -> np.ndarray:
    """Positions of ids ``q`` (prefixes ``qp``) in one sorted level, -1 where absent."""
    out = np.full(len(q), -1, dtype=np.int64)
    n = len(entries)
    if not len(q) or not n:
        return out
    pos = np.searchsorted(prefix, qp)
    cand = np.minimum(pos, n - 1)
    hit = (pos < n) & (prefix[cand] == qp)
    full = hit & (entries["id"][cand] == q).all(axis=1)
    out[full] = cand[full]
    # Prefix equal, full id different: walk the run of equal prefixes (rare).
    for i in np.flatnonzero(hit & ~full):
        j = pos[i]
        while j < n and prefix[j] == qp[i]:
            if (entries["id"][j] == q[i]).all():
                out[i] = j
                break
            j += 1
    return out


class ChunkIndex:
    """Every published chunk's location, sorted by id prefix for batched binary search.

    Two sorted levels. Packs added since the last lookup (all of them when the store
    is opened, then those this process publishes, :meth:`add`) are sorted on their
    own at the next lookup and inserted into the small second level; when that level
    grows past ``MERGE_MIN`` entries and a 64th of the first, it is inserted into the
    first. So a registration costs a sort of its own entries and a copy of the small
    level, never a sort of the index (a registration into a store of millions of
    chunks, or the 1,000th in one process, stays cheap). Positions returned by
    :meth:`locate` address the two levels as one array (:meth:`rows`).
    """

    MERGE_MIN = 1 << 16

    def __init__(self):
        self.pack_ids: list[str] = []
        self._pending: list[tuple[int, np.ndarray]] = []  # added, not yet in a level
        self._lock = threading.Lock()
        self.entries, self.pack_no, self.prefix = _sorted_level([])
        self._d_entries, self._d_pack_no, self._d_prefix = _sorted_level([])

    def add(self, pack_id: str, entries: np.ndarray) -> None:
        with self._lock:
            self.pack_ids.append(pack_id)
            self._pending.append((len(self.pack_ids) - 1, entries))

    def _build(self) -> None:
        with self._lock:
            if not self._pending:
                return
            new = _sorted_level(self._pending)
            self._pending = []
            delta = _merge_levels((self._d_entries, self._d_pack_no, self._d_prefix), new)
            if len(delta[0]) > max(self.MERGE_MIN, len(self.entries) // 64):
                self.entries, self.pack_no, self.prefix = _merge_levels(
                    (self.entries, self.pack_no, self.prefix), delta)
                delta = _sorted_level([])
            self._d_entries, self._d_pack_no, self._d_prefix = delta

    def __len__(self) -> int:
        self._build()
        return len(self.entries) + len(self._d_entries)

    def locate(self, ids) -> np.ndarray:
        """Positions (see :meth:`rows`) of each id, or -1 where the id is not stored."""
        self._build()
        q = ids_to_array(ids)
        qp = _prefix(q) if len(q) else np.zeros(0, np.uint64)
        out = _search(self.prefix, self.entries, q, qp)
        miss = np.flatnonzero(out < 0)
        if len(miss) and len(self._d_entries):
            d = _search(self._d_prefix, self._d_entries, q[miss], qp[miss])
            out[miss[d >= 0]] = d[d >= 0] + len(self.entries)
        return out

    def rows(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(entries, pack numbers) at positions from :meth:`locate` (all >= 0)."""
        pos = np.asarray(pos, dtype=np.int64)
        n = len(self.entries)
        if not len(self._d_entries):
            return self.entries[pos], self.pack_no[pos]
        main = pos < n
        ent = np.empty(len(pos), dtype=ENTRY_DTYPE)
        pno = np.empty(len(pos), dtype=np.int32)
        ent[main], pno[main] = self.entries[pos[main]], self.pack_no[pos[main]]
        ent[~main], pno[~main] = self._d_entries[pos[~main] - n], self._d_pack_no[pos[~main] - n]
        return ent, pno

    def contains(self, ids) -> np.ndarray:
        return self.locate(ids) >= 0


@dataclass
class ChunkRef:
    pack_id: str
    offset: int
    stored: int
    raw: int
    codec: int


class Store:
    """A content-addressed, deduplicated chunk store at ``root``.

    Parameters
    ----------
    root : str, os.PathLike or None
        A local path (default ``$MLOPS_HOME`` or ``./.mlops``), a ``file://`` URI, or
        any ``pyarrow.fs`` URI such as ``s3://bucket/prefix``.
    create : bool
        Create the store if it does not exist (default True).
    params : CdcParams, optional
        Chunk sizes of a new store (fixed for its lifetime, so that versions dedup).
    pack_max_bytes : int
        Pack size limit of a new store (default 64 MiB).
    encrypt : bool, optional
        ``True``: create the store encrypted (docs/encryption.md); chunks and manifests
        are then sealed with AES-256-GCM and chunk ids are keyed BLAKE3. Encryption is
        chosen at creation: ``True`` for an existing plain store (or ``False`` for an
        encrypted one) is refused. Default: as the store is; a new store is plain.
    key : bytes or str, optional
        The key of an encrypted store: 32 bytes or 64 hex digits. Default: from
        ``key_file``, else ``$MLOPS_KEY_FILE``, else ``$MLOPS_KEY``. Never written
        into the store.
    key_file : str or os.PathLike, optional
        A file holding the key (64 hex digits or 32 raw bytes, ``chmod 600``).

    Examples
    --------
    >>> import tempfile
    >>> s = Store(tempfile.mkdtemp() + "/store")
    >>> s.config["format_version"]
    1
    """

    def __init__(self, root=None, create: bool = True, params: CdcParams | None = None,
                 pack_max_bytes: int = 64 << 20, *, encrypt: bool | None = None, key=None,
                 key_file=None):
        from .. import config

        if isinstance(root, Store):
            raise TypeError("pass the Store itself, not Store(Store)")
        self.fs = open_fs(root if root is not None else config.store_root())
        self.root = self.fs.root
        if self.fs.local and os.path.exists(self.root) and not os.path.isdir(self.root):
            raise NotADirectoryError(f"store root exists and is not a directory: {self.root!r}")
        if not self.fs.exists(CONFIG_KEY):
            if not create:
                raise FileNotFoundError(f"no store at {self.root!r} (create it with a snapshot)")
            if isinstance(pack_max_bytes, bool) or not isinstance(pack_max_bytes, int) or pack_max_bytes < 1024:
                raise ValueError(f"pack_max_bytes must be an integer >= 1024, got {pack_max_bytes!r}")
            cipher = None
            if encrypt:  # the key first: no key, no store
                cipher = self._cipher(key, key_file)
            self._create(params or CdcParams(), pack_max_bytes, cipher)
        self.config = self._read_config()
        #: :class:`.crypto.StoreCipher` of an encrypted store, None for a plain one
        self.cipher = self._open_encryption(encrypt, key, key_file)
        #: the BLAKE3 key of chunk ids (None: plain BLAKE3-256, a plain store)
        self.id_key: bytes | None = None if self.cipher is None else self.cipher.id_key
        c = self.config["chunking"]
        try:
            self.params = CdcParams(c["avg_size"], c["min_size"], c["max_size"])
        except (ValueError, TypeError) as exc:
            raise StoreCorruption(f"{self.root}/{CONFIG_KEY} has invalid chunk sizes: {exc}") from None
        self.pack_max_bytes = int(self.config.get("pack_max_bytes", 64 << 20))
        #: No stored chunk is larger (data chunks and metadata blobs): lengths read from
        #: disk are held to it before anything is allocated.
        self.max_chunk = max(self.params.max_size, config.META_CHUNK_MAX_SIZE)
        #: No stored payload is larger: the largest chunk, plus nonce and tag if sealed.
        self.max_stored = self.max_chunk + (0 if self.cipher is None else OVERHEAD)
        self._index: ChunkIndex | None = None
        #: pack id -> why its index is unreadable (filled when the index is loaded)
        self.damaged: dict[str, str] = {}
        self._fds: dict[str, int] = {}
        self._fd_lock = threading.Lock()

    # ------------------------------------------------------------------ config
    def _create(self, params: CdcParams, pack_max_bytes: int, cipher=None) -> None:
        from ..kernels.gear import GEAR_CONTEXT

        cfg = {
            "format": "mlops-engine store",
            "format_version": PLAIN_FORMAT_VERSION if cipher is None else ENCRYPTED_FORMAT_VERSION,
            "created": now_iso(),
            "chunking": {"algorithm": "gear-cdc", "gear": GEAR_CONTEXT,
                         "avg_size": params.avg_size, "min_size": params.min_size,
                         "max_size": params.max_size},
            "hash": "blake3-256" if cipher is None else crypto.ID_HASH,
            "pack_max_bytes": pack_max_bytes,
        }
        if cipher is not None:
            cfg["encryption"] = {"algorithm": crypto.ALGORITHM, "id_hash": crypto.ID_HASH,
                                 "kdf": crypto.KDF, "nonce_size": crypto.NONCE_SIZE,
                                 "tag_size": crypto.TAG_SIZE, "key_check": cipher.key_check}
        self.fs.makedirs("")
        self.fs.create_exclusive(CONFIG_KEY, json.dumps(cfg, indent=1).encode())

    def _read_config(self) -> dict:
        try:
            cfg = json.loads(self.fs.read_bytes(CONFIG_KEY))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise StoreCorruption(f"{self.root}/{CONFIG_KEY} is not valid JSON: {exc}") from None
        if not isinstance(cfg, dict):
            raise StoreCorruption(f"{self.root}/{CONFIG_KEY} is not a JSON object")
        c = cfg.get("chunking")
        if not (isinstance(c, dict) and all(isinstance(c.get(k), int) and not isinstance(c.get(k), bool)
                                            for k in ("avg_size", "min_size", "max_size"))):
            raise StoreCorruption(f"{self.root}/{CONFIG_KEY} has no valid chunking section "
                                  "(avg_size, min_size, max_size)")
        v = cfg.get("format_version")
        if not isinstance(v, int):
            raise StoreFormatError(f"{self.root}/{CONFIG_KEY} has no format_version")
        if v > FORMAT_VERSION:
            raise StoreFormatError(
                f"store {self.root!r} has format_version {v}, newer than this mlops-engine "
                f"supports ({FORMAT_VERSION}); upgrade mlops-engine"
            )
        if (v >= ENCRYPTED_FORMAT_VERSION) != ("encryption" in cfg):
            raise StoreFormatError(
                f"{self.root}/{CONFIG_KEY} has format_version {v} "
                f"{'without' if v >= ENCRYPTED_FORMAT_VERSION else 'with'} an encryption section: "
                "it is damaged or was edited")
        return cfg

    # ------------------------------------------------------------------ encryption
    def _cipher(self, key, key_file) -> crypto.StoreCipher:
        """The cipher of the key given or found in the environment (refused if none)."""
        k = crypto.load_key(key, key_file, store_root=self.root if self.fs.local else None)
        if k is None:
            raise crypto.StoreKeyError(crypto.no_key_message(self.root))
        return crypto.StoreCipher(k)

    def _open_encryption(self, encrypt, key, key_file):
        enc = self.config.get("encryption")
        if enc is None:
            if encrypt:
                raise StoreError(f"store {self.root!r} exists and is not encrypted; encryption is "
                                 "chosen when a store is created (snapshot into a new store)")
            if key is not None or key_file is not None:
                raise StoreError(f"a key was given, but store {self.root!r} is not encrypted")
            return None
        if encrypt is False:
            raise StoreError(f"store {self.root!r} is encrypted (encrypt=False was given)")
        if not isinstance(enc, dict):
            raise StoreFormatError(f"{self.root}/{CONFIG_KEY}: its encryption section is not an "
                                   "object: it is damaged or was edited")
        if enc.get("algorithm") != crypto.ALGORITHM or enc.get("id_hash") != crypto.ID_HASH \
                or enc.get("kdf") != crypto.KDF:
            raise StoreFormatError(
                f"store {self.root!r} is encrypted with {enc.get('algorithm')!r}, ids "
                f"{enc.get('id_hash')!r}, key derivation {enc.get('kdf')!r}; this mlops-engine "
                f"supports {crypto.ALGORITHM}, {crypto.ID_HASH}, {crypto.KDF}")
        cipher = self._cipher(key, key_file)
        if not hmac.compare_digest(cipher.key_check, str(enc.get("key_check"))):
            raise crypto.StoreKeyError(
                f"wrong key for store {self.root!r}: the key given (key=, key_file=, "
                f"${crypto.ENV_KEY_FILE} or ${crypto.ENV_KEY}) does not match the store's key "
                "check value")
        return cipher

    @property
    def encrypted(self) -> bool:
        """Whether chunks and manifests are sealed (docs/encryption.md)."""
        return self.cipher is not None

    def chunk_id(self, data) -> bytes:
        """The id of a chunk's bytes in this store: BLAKE3-256, keyed if encrypted."""
        if self.id_key is None:
            return blake3.blake3(data).digest()
        return blake3.blake3(data, key=self.id_key).digest()

    def seal(self, chunk_id: bytes, raw) -> tuple[int, bytes]:
        """``(codec, payload)`` to store for the chunk ``raw`` of id ``chunk_id``: compressed
        when that pays, then, in an encrypted store, sealed with AES-256-GCM. Every writer
        of chunk payloads (the pipeline, gc's repack) goes through here."""
        codec, payload = compress(raw)
        return codec, self.seal_payload(chunk_id, codec, len(raw), payload)

    def seal_payload(self, chunk_id: bytes, codec: int, raw_len: int, payload):
        """The compressed ``payload`` as stored: itself in a plain store, sealed (``nonce ||
        ciphertext || tag``, bound to id, codec and raw length) in an encrypted one."""
        if self.cipher is None:
            return payload
        return self.cipher.seal(chunk_id, codec, raw_len, payload)

    def unseal(self, chunk_id: bytes, codec: int, payload, raw_len: int) -> bytes:
        """The raw bytes of a stored payload (the inverse of :meth:`seal`). Lengths from
        disk are held to the store's bounds first; :class:`StoreCorruption` (without the
        chunk's name: callers add where it lies) if it does not decrypt or decompress."""
        if raw_len > self.max_chunk or len(payload) > self.max_stored:
            raise StoreCorruption(f"it claims {max(raw_len, len(payload))} bytes, more than the "
                                  f"store's largest chunk ({self.max_chunk} bytes)")
        if self.cipher is not None:
            payload = self.cipher.open(chunk_id, codec, raw_len, payload)
        try:
            return decompress(codec, payload, raw_len, self.max_chunk)
        except StoreCorruption:
            raise
        except Exception as exc:
            raise StoreCorruption(f"it does not decompress: {exc}") from None

    # ------------------------------------------------------------------ index
    def pack_ids(self) -> list[str]:
        """Ids of the published packs (those with an index)."""
        out = []
        for d in self.fs.list("packs"):
            for f in self.fs.list(f"packs/{d}"):
                if f.endswith(".idx"):
                    out.append(f[:-4])
        return sorted(out)

    def read_index(self, pack_id: str) -> np.ndarray:
        key = pack_key(pack_id, "idx")
        return decode_index(self.fs.read_bytes(key), key)

    @property
    def index(self) -> ChunkIndex:
        """The chunk index of every published pack. A damaged pack index is skipped (with a
        warning naming it, and in :attr:`damaged`): readers still reach the content of the
        other packs, and a chunk that only the damaged pack held reads as missing, with the
        damaged index named (:meth:`missing_message`). Writers call
        :meth:`require_intact` first."""
        if self._index is None:
            idx = ChunkIndex()
            damaged: dict[str, str] = {}
            for pid in self.pack_ids():
                try:
                    idx.add(pid, self.read_index(pid))
                except StoreCorruption as exc:
                    damaged[pid] = str(exc)
            if damaged:
                warnings.warn(f"{len(damaged)} damaged pack index(es) skipped, their chunks "
                              f"unreadable: {'; '.join(damaged.values())}; run `mlops data "
                              "verify` for a full report", stacklevel=2)
            self._index, self.damaged = idx, damaged
        return self._index

    def require_intact(self) -> None:
        """Raise :class:`StoreCorruption` naming the damaged pack indexes, if any: a store
        with one is read, but not written to (nor collected) until it is repaired."""
        _ = self.index
        if self.damaged:
            raise StoreCorruption(f"{'; '.join(self.damaged.values())}; the store is not written "
                                  "to while a pack index is damaged: run `mlops data verify` "
                                  "for a full report")

    def missing_message(self, what: str) -> str:
        """``what`` is referenced but not stored, and which damaged indexes may hold it."""
        msg = f"{what} is referenced but not stored"
        if self.damaged:
            msg += (f" (it may be in a pack whose index is damaged: "
                    f"{'; '.join(self.damaged.values())})")
        return msg + "; run `mlops data verify`"

    def reload(self) -> None:
        """Forget the cached index (another process may have published packs)."""
        self._index = None
        self.close()

    def writer(self, parallel: bool = False):
        """A pack writer; ``parallel=True``: one pack per adding thread (snapshots)."""
        if parallel:
            return ParallelPackWriter(self.fs, self.pack_max_bytes)
        return PackWriter(self.fs, self.pack_max_bytes)

    def absorb(self, writer: PackWriter) -> None:
        """Merge the packs that ``writer`` published into the in-memory index."""
        for pid, entries in writer.published:
            self.index.add(pid, entries)

    # ------------------------------------------------------------------ reads
    def _locate_fresh(self, ids) -> np.ndarray:
        """Index positions of ``ids``; where one is missing, the index is read again first.

        Another process may have published packs since this store read its index (a
        trainer registering a model while a long-lived process reads the registry):
        packs are published before any record names their chunks, so a chunk that a
        record names and the cached index lacks is looked for in a fresh index before
        it is called missing. The open pack files stay open: packs never change.
        """
        pos = self.index.locate(ids)
        if (pos < 0).any():
            self._index = None
            pos = self.index.locate(ids)
        return pos

    def locate(self, chunk_id: bytes) -> ChunkRef:
        pos = self._locate_fresh([chunk_id])
        if pos[0] < 0:
            raise StoreCorruption(self.missing_message(f"chunk {chunk_id.hex()}"))
        ents, pnos = self.index.rows(pos)
        e = ents[0]
        return ChunkRef(self.index.pack_ids[int(pnos[0])], int(e["offset"]),
                        int(e["stored"]), int(e["raw"]), int(e["codec"]))

    def _pread(self, pack_id: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > 1 << 62:
            raise StoreCorruption(f"pack {pack_id}: an index entry points at offset {offset}, past "
                                  "the end of any pack; run `mlops data verify`")
        if isinstance(self.fs, LocalFS):
            with self._fd_lock:
                fd = self._fds.get(pack_id)
                if fd is None:
                    fd = os.open(self.fs.path(pack_key(pack_id, "pack")), os.O_RDONLY)
                    self._fds[pack_id] = fd
            data = os.pread(fd, length, offset)
        else:
            data = self.fs.read_range(pack_key(pack_id, "pack"), offset, length)
        if len(data) != length:
            raise StoreCorruption(f"pack {pack_id} is truncated at offset {offset}")
        return data

    def locate_many(self, ids) -> list[ChunkRef]:
        """Locations of many chunks in one vectorized lookup (raises if any is missing)."""
        pos = self._locate_fresh(ids)
        if (pos < 0).any():
            missing = bytes(ids_to_array(ids)[int(np.flatnonzero(pos < 0)[0])]).hex()
            raise StoreCorruption(self.missing_message(
                f"chunk {missing} ({int((pos < 0).sum())} chunks missing)"))
        e, pno = self.index.rows(pos)
        names = self.index.pack_ids
        return [ChunkRef(names[p], o, s, r, c) for p, o, s, r, c in zip(
            pno.tolist(), e["offset"].tolist(), e["stored"].tolist(),
            e["raw"].tolist(), e["codec"].tolist())]

    def read_chunk(self, chunk_id: bytes, verify: bool = True, ref: ChunkRef | None = None) -> bytes:
        """The bytes of a stored chunk, checked against its id."""
        if ref is None:
            ref = self.locate(chunk_id)
        if ref.stored > self.max_stored or ref.raw > self.max_chunk:
            raise StoreCorruption(
                f"chunk {chunk_id.hex()} in pack {ref.pack_id}: its index entry claims "
                f"{max(ref.raw, ref.stored)} bytes, more than the store's largest chunk "
                f"({self.max_chunk} bytes); run `mlops data verify`")
        payload = self._pread(ref.pack_id, ref.offset, ref.stored)
        try:
            raw = self.unseal(chunk_id, ref.codec, payload, ref.raw)
        except StoreCorruption as exc:
            raise StoreCorruption(
                f"chunk {chunk_id.hex()} in pack {ref.pack_id} (offset {ref.offset}) is "
                f"corrupted: {exc}; run `mlops data verify`") from None
        if verify and (len(raw) != ref.raw or self.chunk_id(raw) != chunk_id):
            raise StoreCorruption(
                f"chunk {chunk_id.hex()} in pack {ref.pack_id} (offset {ref.offset}) is corrupted: "
                "its bytes do not hash to its id; run `mlops data verify`"
            )
        return raw

    def close(self) -> None:
        """Close the pack files this store has open (it reopens them when needed)."""
        with self._fd_lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    # ------------------------------------------------------------------ blobs
    def put_blob(self, data, writer: PackWriter, pending: set | None = None,
                 small_chunks: bool = False) -> dict:
        """Chunk, deduplicate and store ``data``; returns ``{"id", "size", "chunks"}``.

        The chunk pipeline (:class:`.pipeline.ChunkSink`) into ``writer``; ``pending``
        holds the ids already added to it. ``small_chunks`` uses the 4 KiB metadata
        chunk sizes (for manifests), so that a manifest changed in a few rows adds a
        few KiB to the store.
        """
        return ChunkSink(self, writer, pending).put_bytes(data, small_chunks=small_chunks)

    def get_blob(self, blob: dict) -> bytes:
        try:
            ids = [bytes.fromhex(cid) for cid, _ in blob["chunks"]]
            size = blob["size"]
        except (KeyError, TypeError, ValueError):
            raise StoreCorruption(f"blob reference {str(blob)[:80]} is malformed") from None
        if any(len(i) != 32 for i in ids):
            raise StoreCorruption(f"blob reference {str(blob)[:80]} names a chunk id that is not "
                                  "32 bytes")
        data = b"".join([self.read_chunk(i) for i in ids])
        if len(data) != size:
            raise StoreCorruption(f"blob {blob['id']} has {len(data)} bytes, expected {blob['size']}")
        return data

    # ------------------------------------------------------------------ version records
    def record_key(self, kind: str, name: str, number: int) -> str:
        return f"{kind}s/{name}/v{number:08d}.json"

    def list_numbers(self, kind: str, name: str) -> list[int]:
        out = []
        for f in self.fs.list(f"{kind}s/{name}"):
            if f.startswith("v") and f.endswith(".json") and f[1:-5].isdigit():
                out.append(int(f[1:-5]))
        return sorted(out)

    def list_names(self, kind: str) -> list[str]:
        return [n for n in self.fs.list(f"{kind}s") if NAME_RE.match(n)]

    def read_record(self, kind: str, name: str, number: int) -> dict:
        key = self.record_key(kind, name, number)
        try:
            rec = json.loads(self.fs.read_bytes(key))
        except FileNotFoundError:
            raise UnknownVersion(f"no version {name}:v{number}") from None
        except (ValueError, RecursionError) as exc:
            raise StoreCorruption(f"version record {key} is not valid JSON: {exc}") from None
        if not isinstance(rec, dict):
            raise StoreCorruption(f"version record {key} is not a JSON object")
        v = rec.get("format_version", 0)
        if isinstance(v, bool) or not isinstance(v, int):
            raise StoreCorruption(f"version record {key} has a format_version that is not an "
                                  f"integer: {v!r}")
        if v > RECORD_FORMAT_VERSION:
            raise StoreFormatError(
                f"version record {key} has format_version {v}, newer than this mlops-engine "
                f"supports ({RECORD_FORMAT_VERSION}); upgrade mlops-engine"
            )
        return rec

    def commit_record(self, kind: str, name: str, make_record, max_tries: int = 1000) -> dict:
        """Write the next numbered record of ``name`` with put-if-absent, retrying on a lost race.

        ``make_record(number, parent_record_or_None)`` builds the record; it is
        called again, with fresh arguments, whenever another writer took the number.
        """
        check_name(name)
        for _ in range(max_tries):
            nums = self.list_numbers(kind, name)
            number = (nums[-1] + 1) if nums else 1
            parent = self.read_record(kind, name, nums[-1]) if nums else None
            rec = make_record(number, parent)
            data = json.dumps(rec, indent=1, sort_keys=True).encode()
            if self.fs.create_exclusive(self.record_key(kind, name, number), data):
                return rec
        raise StoreError(f"could not commit a version of {name!r} after {max_tries} tries")

    def delete_record(self, kind: str, name: str, number: int) -> None:
        self.fs.delete(self.record_key(kind, name, number))
