"""engine.chunk_bytes / chunk_file / file_id: inputs, outputs, determinism and bad input."""

import mmap
import os

import numpy as np
import pyarrow as pa
import pytest

import engine
from engine.kernels import CdcParams
from engine.kernels import reference as R
from engine.store.pipeline import CHUNK_DTYPE, chunk_bytes, chunk_file, file_id

from conftest import SMALL, random_bytes


def expected_table(data: bytes, p: CdcParams):
    import blake3

    cuts = R.cdc_cut_points(np.frombuffer(data, np.uint8), p.min_size, p.max_size, p.mask).tolist()
    starts = [0, *cuts[:-1]]
    return [(s, e - s, blake3.blake3(data[s:e]).digest()) for s, e in zip(starts, cuts)]


def rows(table):
    return list(zip(table.column("offset").to_pylist(), table.column("length").to_pylist(),
                    table.column("id").to_pylist()))


@pytest.mark.parametrize("n", [0, 1, 63, 5000, 300_000])
def test_chunk_bytes_matches_reference_and_blake3(n):
    data = random_bytes(n, n)
    assert rows(chunk_bytes(data, SMALL)) == expected_table(data, SMALL)


def test_output_formats_agree():
    data = random_bytes(1 << 20, 1)
    t = chunk_bytes(data)
    a = chunk_bytes(data, output="numpy")
    assert isinstance(t, pa.Table) and t.schema.field("id").type == pa.binary(32)
    assert a.dtype == CHUNK_DTYPE
    assert t.column("offset").to_pylist() == a["offset"].tolist()
    assert t.column("length").to_pylist() == a["length"].tolist()
    assert t.column("id").to_pylist() == [bytes(x) for x in a["id"]]
    assert file_id(t) == file_id(a)
    assert int(a["length"].sum()) == len(data)


def test_any_buffer_type(tmp_path):
    data = random_bytes(400_000, 2)
    ref = chunk_bytes(data)
    arr = np.frombuffer(data, np.uint8)
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        from_mmap = chunk_bytes(m)
    for buf in (bytearray(data), memoryview(data), arr, arr.view(np.uint32)):
        assert chunk_bytes(buf).equals(ref)
    assert from_mmap.equals(ref)


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("block_size", [100_000, 1 << 20, 16 << 20])
def test_workers_and_blocks_do_not_change_result(workers, block_size):
    data = random_bytes(3 << 20, 3)
    assert chunk_bytes(data, workers=workers, block_size=block_size).equals(chunk_bytes(data))


@pytest.mark.parametrize("n", [0, 1, 8191, 8192, 131072, 2_000_000])
@pytest.mark.parametrize("block_size", [4096, 65536, 1 << 20])
def test_chunk_file_equals_chunk_bytes(tmp_path, n, block_size):
    data = random_bytes(n, 4)
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    assert chunk_file(p, block_size=block_size).equals(chunk_bytes(data))
    assert chunk_file(str(p), output="numpy").tobytes() == chunk_bytes(data, output="numpy").tobytes()


def test_file_id_is_stable_and_content_defined():
    data = random_bytes(1 << 20, 5)
    fid = file_id(chunk_bytes(data))
    assert fid == file_id(chunk_bytes(bytes(data)))
    assert len(fid) == 32
    assert fid != file_id(chunk_bytes(data[:-1]))
    # golden: the id of a fixed input is frozen (depends on GEAR, BLAKE3 and the id layout)
    golden = bytes(range(256)) * 1000
    assert file_id(chunk_bytes(golden)).hex() == GOLDEN_FILE_ID


GOLDEN_FILE_ID = "9e8ca8d8e8cbcd529705e632287f3509b12cce5098c6ec2fe7bb320e46d0982b"


def test_file_id_layout_is_id_then_u64_length():
    import blake3

    data = random_bytes(700_000, 6)
    rows_ = expected_table(data, CdcParams())
    manual = blake3.blake3(b"".join(i + n.to_bytes(8, "little") for _, n, i in rows_)).digest()
    assert file_id(chunk_bytes(data)) == manual


def test_top_level_api_is_lazy_and_complete():
    assert engine.chunk_bytes is chunk_bytes
    assert engine.file_id is file_id and engine.chunk_file is chunk_file
    assert engine.CdcParams is CdcParams
    with pytest.raises(AttributeError):
        engine.does_not_exist  # noqa: B018


def test_engine_chunking_is_a_deprecated_alias():
    import engine.chunking

    for name in ("chunk_bytes", "chunk_file", "file_id", "default_workers", "split_block",
                 "warm_up", "iter_chunks", "CHUNK_DTYPE"):
        with pytest.warns(DeprecationWarning, match=f"import {name} from engine.store.pipeline"):
            assert getattr(engine.chunking, name) is getattr(engine.store.pipeline, name)
    with pytest.raises(AttributeError):
        engine.chunking.nope  # noqa: B018


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad", ["text", 123, None, 4.5, [1, 2, 3]])
def test_non_buffer_is_type_error(bad):
    with pytest.raises(TypeError, match="buf must be a bytes-like object"):
        chunk_bytes(bad)


def test_non_contiguous_buffer_is_value_error():
    arr = np.zeros((100, 100), np.uint8)[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        chunk_bytes(arr)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"avg_size": 1000}, "avg_size must be a power of two"),
        ({"avg_size": 0}, "avg_size must be a power of two"),
        ({"avg_size": -65536}, "avg_size must be a power of two"),
        ({"avg_size": 4096, "min_size": 10}, "min_size must be >= 64"),
        ({"avg_size": 4096, "min_size": -5}, "min_size must be >= 64"),
        ({"avg_size": 4096, "min_size": 8192, "max_size": 4096}, r"min_size \(8192\) must not exceed max_size"),
        ({"avg_size": 4096, "max_size": 32}, "must not exceed max_size"),
    ],
)
def test_bad_sizes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CdcParams(**kwargs)


@pytest.mark.parametrize("kwargs", [{"avg_size": 4096.0}, {"avg_size": True}, {"min_size": "64"}])
def test_non_integer_sizes(kwargs):
    with pytest.raises(TypeError, match="must be an integer"):
        CdcParams(**kwargs)


def test_bad_keyword_values():
    with pytest.raises(ValueError, match="output must be"):
        chunk_bytes(b"x", output="pandas")
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        chunk_bytes(b"x", workers=0)
    with pytest.raises(ValueError, match="block_size must be a positive integer"):
        chunk_bytes(b"x", block_size=0)
    with pytest.raises(ValueError, match="backend must be one of"):
        chunk_bytes(b"x", backend="fortran")


def test_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        chunk_file(tmp_path / "missing")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        chunk_file(tmp_path)
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        chunk_file(42)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        chunk_file(fifo)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without permission")
def test_unreadable_file(tmp_path):
    p = tmp_path / "secret"
    p.write_bytes(b"x")
    p.chmod(0)
    with pytest.raises(PermissionError):
        chunk_file(p)
