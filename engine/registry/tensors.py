"""State dicts as flat tensor files (the safetensors layout), written without pickle.

Layout: an 8-byte little-endian header length N, N bytes of JSON (space-padded to a
multiple of 8) mapping each tensor name to ``{"dtype", "shape", "data_offsets"}``
plus ``"__metadata__"``, then the raw little-endian tensor bytes, in name order.
This is the published safetensors layout, so the files load with the
``safetensors`` package too; this module does not need it.

Tensors are laid out in name order at stable offsets, so a checkpoint whose
tensors mostly did not change shares most of its chunks with the previous one.
A state dict that is not a flat mapping of names to tensors (an optimizer's, with
nested dicts and ints) is stored with ``torch.save`` instead and loaded back with
``torch.load(weights_only=True)``, which refuses arbitrary code.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import sys

import numpy as np

from .errors import RegistryCorruption

_NP = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
       "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
       "U16": np.uint16, "U32": np.uint32, "U64": np.uint64}
_NP_CODE = {np.dtype(v): k for k, v in _NP.items()}
_TORCH_CODE = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
               "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8",
               "bool": "BOOL"}
_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
         "U8": 1, "BOOL": 1, "U16": 2, "U32": 4, "U64": 8}
MAX_HEADER = 100 << 20


def _torch():
    return sys.modules.get("torch")


def _is_torch_tensor(x) -> bool:
    t = _torch()
    return t is not None and isinstance(x, t.Tensor)


def is_flat_tensor_dict(obj) -> bool:
    """True for a non-empty mapping of str -> tensor/ndarray with supported dtypes."""
    if not isinstance(obj, dict) or not obj:
        return False
    for k, v in obj.items():
        if not isinstance(k, str) or k == "__metadata__":
            return False
        if _is_torch_tensor(v):
            if str(v.dtype).removeprefix("torch.") not in _TORCH_CODE or v.is_sparse:
                return False
        elif isinstance(v, np.ndarray):
            if v.dtype.newbyteorder("=") not in _NP_CODE:
                return False
        else:
            return False
    return True


def is_optimizer_state_dict(obj) -> bool:
    """The shape every ``torch.optim`` optimizer's ``state_dict()`` has: ``state`` (per
    parameter; empty for plain SGD) and ``param_groups`` (each with its ``params``)."""
    if not isinstance(obj, dict) or not {"state", "param_groups"} <= obj.keys():
        return False
    groups = obj["param_groups"]
    return isinstance(obj["state"], dict) and isinstance(groups, list) and bool(groups) and \
        all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)


def looks_like_state_dict(obj) -> bool:
    """A mapping holding a tensor or an optimizer state dict somewhere (``register`` dispatch)."""
    if is_flat_tensor_dict(obj) or is_optimizer_state_dict(obj):
        return True
    if not isinstance(obj, dict):
        return False
    return any(_is_torch_tensor(v) or looks_like_state_dict(v) for v in obj.values())


def _raw(v) -> tuple[str, list[int], memoryview]:
    if _is_torch_tensor(v):
        t = v.detach().cpu().contiguous()
        code = _TORCH_CODE[str(t.dtype).removeprefix("torch.")]
        flat = t.reshape(-1)
        u8 = flat.view(_torch().uint8) if flat.numel() else flat.to(_torch().uint8)
        return code, list(t.shape), memoryview(u8.numpy()).cast("B")
    a = np.asarray(v)
    shape = list(a.shape)  # before ascontiguousarray, which makes a 0-d array 1-d
    a = np.ascontiguousarray(a).reshape(-1)
    code = _NP_CODE[a.dtype.newbyteorder("=")]
    if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and sys.byteorder == "big"):
        a = a.astype(a.dtype.newbyteorder("<"))
    return code, shape, memoryview(a.view(np.uint8)).cast("B")


class TensorFile:
    """The layout of one tensor file before its bytes exist: the header and, in order, the
    tensors whose raw bytes follow it.

    :meth:`to_bytes` writes the file on the host. :meth:`device_buffer` writes it in GPU
    memory instead (one device-to-device copy per tensor), for the registry to chunk and
    hash it there and copy to the host only the chunks the store lacks; both give the
    same bytes.
    """

    def __init__(self, header: bytes, tensors: list, sizes: list[int]):
        self.header = header
        self.tensors = tensors
        self.sizes = sizes
        self.size = len(header) + sum(sizes)

    @property
    def nbytes(self) -> int:
        return self.size

    def on_device(self) -> bool:
        """Whether any tensor lives in GPU memory (see ``cuda_runtime.is_device_object``)."""
        from engine.kernels.cuda_runtime import is_device_object

        return any(is_device_object(t) for t in self.tensors)

    def to_bytes(self) -> bytes:
        out = bytearray(self.size)
        out[:len(self.header)] = self.header
        pos = len(self.header)
        for t, n in zip(self.tensors, self.sizes):
            raw = _raw(t)[2]
            out[pos:pos + n] = raw
            pos += n
        return bytes(out)

    def device_buffer(self, dev):
        """The file's bytes as one uint8 array on device ``dev``."""
        xp = dev.xp
        buf = xp.empty(self.size, dtype=xp.uint8)
        buf[:len(self.header)] = dev.to_device(np.frombuffer(self.header, np.uint8))
        pos = len(self.header)
        for t, n in zip(self.tensors, self.sizes):
            if n:
                try:
                    buf[pos:pos + n] = dev.as_bytes(t)
                except TypeError:  # a host tensor or array among device ones
                    buf[pos:pos + n] = dev.to_device(np.frombuffer(_raw(t)[2], np.uint8))
            pos += n
        return buf


def layout(state: dict, metadata: dict | None = None) -> TensorFile:
    """The :class:`TensorFile` of a flat tensor dict (torch tensors or NumPy arrays)."""
    header: dict = {}
    off = 0
    framework = "pt" if any(_is_torch_tensor(v) for v in state.values()) else "np"
    tensors, sizes = [], []
    for name in sorted(state):
        code, shape, nbytes = _describe(state[name])
        header[name] = {"dtype": code, "shape": shape, "data_offsets": [off, off + nbytes]}
        off += nbytes
        tensors.append(state[name])
        sizes.append(nbytes)
    meta = {"format": framework}
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return TensorFile(struct.pack("<Q", len(h)) + h, tensors, sizes)


def _describe(v) -> tuple[str, list[int], int]:
    """dtype code, shape and byte size of a tensor or array, without touching its memory."""
    if _is_torch_tensor(v):
        code = _TORCH_CODE[str(v.dtype).removeprefix("torch.")]
        return code, list(v.shape), v.numel() * _SIZE[code]
    a = np.asarray(v)
    code = _NP_CODE[a.dtype.newbyteorder("=")]
    return code, list(a.shape), a.size * _SIZE[code]


def dumps(state: dict, metadata: dict | None = None) -> bytes:
    """Serialize a flat tensor dict (torch tensors or NumPy arrays) to safetensors bytes."""
    return layout(state, metadata).to_bytes()


def _header(data, total: int, where: str) -> tuple[dict, dict, int]:
    """Parse and check the header of a tensor file of ``total`` bytes starting with ``data``
    (at least its first 8 + header-length bytes): ``(tensors, metadata, body offset)``.
    Every tensor's dtype, shape and offsets are checked against the body's size."""
    data = memoryview(data).cast("B")
    if len(data) < 8:
        raise RegistryCorruption(f"{where}: {total} bytes is too short for a tensor file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER or 8 + n > total or 8 + n > len(data):
        raise RegistryCorruption(f"{where}: header length {n} does not fit in {total} bytes")
    try:
        header = json.loads(bytes(data[8:8 + n]))
    except ValueError as exc:
        raise RegistryCorruption(f"{where}: header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise RegistryCorruption(f"{where}: header is not a JSON object")
    meta = header.pop("__metadata__", {}) or {}
    if not isinstance(meta, dict):
        raise RegistryCorruption(f"{where}: __metadata__ is not a JSON object")
    body = total - 8 - n
    for name, info in header.items():
        if not _tensor_ok(info, body):
            raise RegistryCorruption(f"{where}: tensor {name!r} has a bad dtype, shape or offsets")
    return header, meta, 8 + n


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _tensor_ok(info, body: int) -> bool:
    """Whether one header entry's dtype, shape (ints in [0, 2**63)) and data offsets (two
    ints) fit a body of ``body`` bytes; never raises."""
    if not isinstance(info, dict):
        return False
    code, shape, offs = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if code not in _SIZE or not isinstance(shape, list) or not isinstance(offs, list) or len(offs) != 2:
        return False
    if not all(_is_int(d) and 0 <= d < 1 << 63 for d in shape) or not all(map(_is_int, offs)):
        return False
    count = math.prod(shape)  # exact: Python ints do not overflow
    a, b = offs
    return 0 <= a <= b <= body and b - a == count * _SIZE[code]


def check_file(path: str, where: str) -> None:
    """Check a ``.safetensors`` file's header against its size, without reading the tensors."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) == 8:
            head += f.read(min(struct.unpack("<Q", head)[0], MAX_HEADER))
        _header(head, os.fstat(f.fileno()).st_size, where)


def loads(data, framework: str | None = None, where: str = "state dict") -> dict:
    """Read safetensors bytes back: torch tensors if ``framework="pt"`` (default: as
    written, when torch is importable), else NumPy arrays (bfloat16 as uint16 bits)."""
    data = memoryview(data).cast("B")
    header, meta, start = _header(data, len(data), where)
    body = data[start:]
    if framework is None:
        framework = meta.get("format", "np")
    torch = None
    if framework == "pt":
        import torch
    out = {}
    for name, info in header.items():
        code, shape, (a, b) = info["dtype"], info["shape"], info["data_offsets"]
        np_dtype = np.uint16 if code == "BF16" else _NP[code]
        arr = np.frombuffer(body[a:b], dtype=np.dtype(np_dtype).newbyteorder("<")).reshape(shape)
        if torch is not None:
            t = torch.from_numpy(arr.copy())
            out[name] = t.view(torch.bfloat16) if code == "BF16" else t
        else:
            out[name] = arr.copy()
    return out


def torch_dumps(obj) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def torch_loads(data) -> object:
    import torch

    return torch.load(io.BytesIO(bytes(data)), weights_only=True)
