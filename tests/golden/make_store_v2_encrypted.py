"""Regenerate the encrypted golden store ``tests/golden/store_v2_encrypted`` (format_version 2).

Run from the repository root: ``python tests/golden/make_store_v2_encrypted.py``. The
same two trees as ``store_v1`` (``make_store_v1.tree_v1``/``tree_v2``), snapshotted into
an encrypted store under the public test key :data:`KEY_HEX`. Nonces are random, so the
pack bytes differ on every run; what is frozen is that every later mlops-engine opens,
decrypts and verifies *these* bytes, and gives the same ids under the same key
(``tests/test_encryption.py``). Regenerate it only together with a deliberate format
change (and a new format_version).

The key is a published test key: never use it for data.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
STORE = os.path.join(HERE, "store_v2_encrypted")
#: the public key of the fixture (32 bytes: 00 01 02 ... 1f)
KEY_HEX = bytes(range(32)).hex()


def main() -> int:
    sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
    sys.path.insert(0, HERE)
    os.environ["MLOPS_CACHE_DIR"] = tempfile.mkdtemp()
    import make_store_v1 as plain

    import engine.data as D
    from engine.kernels import CdcParams
    from engine.store import Store

    shutil.rmtree(STORE, ignore_errors=True)
    st = Store(STORE, params=CdcParams(avg_size=256, min_size=64, max_size=1024),
               pack_max_bytes=8192, encrypt=True, key=KEY_HEX)
    with tempfile.TemporaryDirectory() as src:
        plain.tree_v1(src)
        v1 = D.snapshot(src, "golden", "version one", store=st, workers=1)
        plain.tree_v2(src)
        v2 = D.snapshot(src, "golden", "version two", store=st, workers=1)
    print(v1.ref, v1.id)
    print(v2.ref, v2.id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
