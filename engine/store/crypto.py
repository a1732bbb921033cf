"""Encryption at rest of a store: keys, keyed chunk ids, sealed chunk payloads.

An encrypted store (``Store(root, encrypt=True)``, docs/encryption.md) differs from a
plain one in three ways, all decided here:

* **Chunk ids** are keyed BLAKE3-256 (``blake3(data, key=id_key)``): without the key
  nobody can compute the id of a known file's chunks, so ids confirm nothing about
  content. The same bytes under the same key still give the same id: dedup works.
* **Payloads** are sealed: compressed (when that pays), then AES-256-GCM with a
  random 12-byte nonce. The stored payload is ``nonce (12) || ciphertext || tag
  (16)``, 28 bytes longer than the compressed chunk; the associated data
  ``chunk id (32) || codec (u8) || raw length (u32 LE)`` binds it to its record.
* **config.json** has an ``encryption`` section with a key check value, so that a
  wrong key is refused at open, with a clear error, before anything is read or
  written.

The key is 32 random bytes that never enter the store. It comes from the ``key=``
argument, ``key_file=`` (or ``$MLOPS_KEY_FILE``: a file holding the key as 64 hex
digits or as 32 raw bytes, readable by its owner only) or ``$MLOPS_KEY`` (64 hex
digits). Three sub-keys are derived from it with BLAKE3's ``derive_key`` mode under
distinct contexts (:data:`ID_CONTEXT`, :data:`AEAD_CONTEXT`, :data:`CHECK_CONTEXT`),
so that no two uses share a key.

``cryptography`` (the ``crypto`` extra) is imported only when an encrypted store is
opened.
"""

from __future__ import annotations

import os
import stat
import struct

import blake3

from .errors import StoreCorruption, StoreError

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
#: Bytes a sealed payload adds to the compressed chunk: nonce and tag.
OVERHEAD = NONCE_SIZE + TAG_SIZE

ALGORITHM = "aes-256-gcm"
ID_HASH = "blake3-256-keyed"
KDF = "blake3-derive-key"
ID_CONTEXT = "mlops-engine store 2026-12 chunk id key v1"
AEAD_CONTEXT = "mlops-engine store 2026-12 aes-256-gcm key v1"
CHECK_CONTEXT = "mlops-engine store 2026-12 key check v1"

ENV_KEY_FILE = "MLOPS_KEY_FILE"
ENV_KEY = "MLOPS_KEY"

_AAD = struct.Struct("<32sBI")  # chunk id, codec, raw length


class StoreKeyError(StoreError):
    """No key, a malformed key or key file, or a key that does not open this store."""


def _parse_hex(text: str, where: str) -> bytes:
    t = text.strip()
    if len(t) != 2 * KEY_SIZE:
        raise StoreKeyError(f"{where} must hold a key of {KEY_SIZE} bytes as {2 * KEY_SIZE} hex "
                            f"digits, got {len(t)} characters")
    try:
        return bytes.fromhex(t)
    except ValueError:
        raise StoreKeyError(f"{where} must hold {2 * KEY_SIZE} hex digits (0-9, a-f); it "
                            "holds other characters") from None


def read_key_file(path, store_root: str | None = None) -> bytes:
    """The key in the file ``path`` (``~`` expanded): 64 hex digits (surrounding whitespace
    allowed) or exactly 32 raw bytes.

    Refused, with :class:`StoreKeyError` naming the file: a file readable or writable by
    its group or by others (``chmod 600`` it), a file that is not a regular file, a file
    inside ``store_root`` (the key must never be stored with what it protects), and
    contents of any other form.
    """
    p = os.path.expanduser(os.fspath(path))
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise StoreKeyError(f"key file {p!r} does not exist") from None
    except OSError as exc:
        raise StoreKeyError(f"key file {p!r} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise StoreKeyError(f"key file {p!r} is not a regular file")
    if os.name == "posix" and st.st_mode & 0o077:
        raise StoreKeyError(
            f"key file {p!r} is accessible by group or others (mode "
            f"{stat.S_IMODE(st.st_mode):03o}); make it private with `chmod 600 {p}`")
    if store_root is not None:
        root = os.path.realpath(store_root)
        real = os.path.realpath(p)
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            raise StoreKeyError(f"key file {p!r} lies inside the store {store_root!r}; keep the "
                                "key outside the store it protects")
    try:
        with open(p, "rb") as f:
            data = f.read(4 * KEY_SIZE + 1)
    except OSError as exc:
        raise StoreKeyError(f"key file {p!r} cannot be read: {exc.strerror or exc}") from None
    if len(data) == KEY_SIZE:
        return data
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        text = None
    if text is None or len(text.strip()) != 2 * KEY_SIZE:
        raise StoreKeyError(f"key file {p!r} must hold a key of exactly {KEY_SIZE} raw bytes or "
                            f"{2 * KEY_SIZE} hex digits; it holds {len(data)} bytes")
    return _parse_hex(text, f"key file {p!r}")


def as_key(key) -> bytes:
    """A key given as an argument: 32 bytes, or a string of 64 hex digits."""
    if isinstance(key, str):
        return _parse_hex(key, "key")
    if isinstance(key, (bytes, bytearray, memoryview)):
        b = bytes(key)
        if len(b) != KEY_SIZE:
            raise StoreKeyError(f"key must be {KEY_SIZE} bytes, got {len(b)}")
        return b
    raise TypeError(f"key must be {KEY_SIZE} bytes or a string of {2 * KEY_SIZE} hex digits, "
                    f"got {type(key).__name__}")


def load_key(key=None, key_file=None, *, store_root: str | None = None,
             environ=None) -> bytes | None:
    """The store key from, in this order: ``key``, ``key_file``, ``$MLOPS_KEY_FILE``,
    ``$MLOPS_KEY``; None if none is given. Setting both environment variables is
    refused as ambiguous.

    Examples
    --------
    >>> load_key(environ={}) is None
    True
    >>> load_key("00" * 32, environ={}) == bytes(32)
    True
    """
    if key is not None and key_file is not None:
        raise ValueError("give the key or a key file, not both")
    if key is not None:
        return as_key(key)
    if key_file is not None:
        return read_key_file(key_file, store_root)
    env = os.environ if environ is None else environ
    path, text = env.get(ENV_KEY_FILE) or None, env.get(ENV_KEY) or None
    if path and text:
        raise StoreKeyError(f"both ${ENV_KEY_FILE} and ${ENV_KEY} are set; set only one")
    if path:
        return read_key_file(path, store_root)
    if text:
        return _parse_hex(text, f"${ENV_KEY}")
    return None


def no_key_message(root: str) -> str:
    return (f"store {root!r} is encrypted and no key was given: set ${ENV_KEY_FILE} to a file "
            f"holding the key (64 hex digits, chmod 600) or ${ENV_KEY} to the key in hex, or "
            "pass key=/key_file= (CLI: --key-file)")


def generate_key() -> bytes:
    """32 random bytes from the operating system: a new store key.

    Examples
    --------
    >>> len(generate_key())
    32
    """
    return os.urandom(KEY_SIZE)


def _aesgcm():
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise StoreError("store encryption needs the `cryptography` package: "
                         "pip install 'mlops-engine[crypto]'") from None
    return AESGCM


class StoreCipher:
    """The derived keys of one store key: keyed chunk ids, sealing and opening payloads.

    Examples
    --------
    >>> c = StoreCipher(bytes(32))
    >>> cid = c.chunk_id(b"abc")
    >>> c.open(cid, 0, 3, c.seal(cid, 0, 3, b"abc"))
    b'abc'
    """

    def __init__(self, key: bytes):
        key = as_key(key)
        self.id_key = blake3.blake3(key, derive_key_context=ID_CONTEXT).digest()
        self._aead = _aesgcm()(blake3.blake3(key, derive_key_context=AEAD_CONTEXT).digest())
        self.key_check = blake3.blake3(key, derive_key_context=CHECK_CONTEXT).hexdigest()

    def chunk_id(self, data) -> bytes:
        return blake3.blake3(data, key=self.id_key).digest()

    def seal(self, chunk_id: bytes, codec: int, raw_len: int, payload) -> bytes:
        """``nonce || AES-256-GCM(payload) || tag`` of a chunk's (compressed) payload."""
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, payload, _AAD.pack(chunk_id, codec, raw_len))

    def open(self, chunk_id: bytes, codec: int, raw_len: int, sealed) -> bytes:
        """The (compressed) payload in ``sealed``; :class:`StoreCorruption` if the tag fails."""
        if len(sealed) < OVERHEAD:
            raise StoreCorruption(f"its sealed payload of {len(sealed)} bytes is shorter than a "
                                  f"nonce and a tag ({OVERHEAD} bytes)")
        from cryptography.exceptions import InvalidTag

        mv = memoryview(sealed)
        try:
            return self._aead.decrypt(bytes(mv[:NONCE_SIZE]), mv[NONCE_SIZE:],
                                      _AAD.pack(chunk_id, codec, raw_len))
        except InvalidTag:
            raise StoreCorruption("it does not decrypt: its AES-GCM tag fails (the payload or its "
                                  "record header is damaged, or it was sealed under another key)"
                                  ) from None
