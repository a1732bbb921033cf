"""The ``cuda`` backend's runtime: CUDA sources, devices, launches and their CPU emulation.

Every GPU kernel of mlops-engine is CUDA C++ source held in a Python string
(:class:`CudaSource`, one per ``kernels/*_cuda.py`` module), compiled lazily per
device and launched through one interface, :meth:`Device.launch`. Two devices
implement it:

:class:`CupyDevice`
    A real GPU through CuPy: the source is compiled by NVRTC
    (``cupy.RawModule``), arrays are CuPy arrays.
:class:`EmulatedDevice`
    The *same source* compiled for the host by the system C++ compiler through a
    small shim header (:data:`SHIM`): ``blockIdx``/``threadIdx`` become loop
    variables of a serial loop over every block and thread (forward or reversed,
    so that a kernel relying on an order of threads is caught), atomics become
    plain read-modify-writes, and arrays are NumPy arrays. This is how every
    kernel's logic is tested against the NumPy references on a machine without a
    GPU (CI). A kernel must therefore be written one thread per item, without
    ``__shared__`` memory or ``__syncthreads()``: cooperation between threads goes
    through atomics or through separate launches (see ``docs/architecture.md``).

The orchestration around the launches (prefix sums, sorts, compaction) is written
once against ``device.xp`` (``cupy`` or ``numpy``), so the emulation covers it too.

``import engine`` imports none of this; CuPy is imported by :func:`cupy_device`
on first use, and a missing CuPy or GPU raises :class:`~engine.kernels.BackendUnavailable`
with the ``pip install`` that fits the machine's CUDA driver.

Examples
--------
A kernel, compiled for the host and launched over 8 threads:

>>> import numpy as np
>>> src = CudaSource("example", '''
... extern "C" __global__ void mlops_example_add(u64* a, i64 n, u64 v) {
...     i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
...     if (i < n) a[i] += v;
... }''')
>>> dev = emulator()
>>> a = dev.xp.arange(5, dtype=np.uint64)
>>> dev.launch(src, "mlops_example_add", grid=2, block=4, args=(a, 5, 10))
>>> a.tolist()
[10, 11, 12, 13, 14]
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field

import numpy as np

from ._registry import BackendUnavailable

# Types and helpers every kernel source may use; prepended to each source for NVRTC,
# nvcc and the host emulation alike (NVRTC has no standard headers, so no #include).
PRELUDE = r"""
typedef unsigned long long u64;
typedef long long i64;
typedef unsigned int u32;
typedef int i32;
typedef unsigned short u16;
typedef unsigned char u8;
#define MLOPS_NAN_F64 (__longlong_as_double(0x7ff8000000000000LL))
#define MLOPS_INF_F64 (__longlong_as_double(0x7ff0000000000000LL))
#define MLOPS_NAN_F32 (__int_as_float(0x7fc00000))
#define MLOPS_GLOBAL_ID() ((i64)blockIdx.x * (i64)blockDim.x + (i64)threadIdx.x)
#define MLOPS_GLOBAL_STRIDE() ((i64)gridDim.x * (i64)blockDim.x)
"""

# What CUDA gives device code, for the host compiler: one serial thread stands for every
# block and thread in turn.
SHIM = r"""
#include <math.h>
#include <string.h>
#include <stdint.h>
struct mlops_uint3 { unsigned x, y, z; };
static mlops_uint3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__ static inline
#define __host__
#define __forceinline__
#define __noinline__
#define __launch_bounds__(...)
#define __shared__ MLOPS_EMULATOR_HAS_NO_SHARED_MEMORY_write_one_thread_per_item
#define __syncthreads() MLOPS_EMULATOR_HAS_NO_SYNCTHREADS_use_separate_launches
#define __ldg(p) (*(p))
template <class T> static inline T atomicAdd(T* p, T v) { T o = *p; *p = o + v; return o; }
template <class T> static inline T atomicSub(T* p, T v) { T o = *p; *p = o - v; return o; }
template <class T> static inline T atomicMax(T* p, T v) { T o = *p; if (v > o) *p = v; return o; }
template <class T> static inline T atomicMin(T* p, T v) { T o = *p; if (v < o) *p = v; return o; }
template <class T> static inline T atomicOr(T* p, T v) { T o = *p; *p = o | v; return o; }
template <class T> static inline T atomicAnd(T* p, T v) { T o = *p; *p = o & v; return o; }
template <class T> static inline T atomicExch(T* p, T v) { T o = *p; *p = v; return o; }
template <class T> static inline T atomicCAS(T* p, T c, T v) { T o = *p; if (o == c) *p = v; return o; }
static inline void __threadfence() {}
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
static inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
static inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned s) {
    s &= 31; return s ? (lo >> s) | (hi << (32 - s)) : lo;
}
static inline double __longlong_as_double(long long v) { double d; memcpy(&d, &v, 8); return d; }
static inline long long __double_as_longlong(double d) { long long v; memcpy(&v, &d, 8); return v; }
static inline float __int_as_float(int v) { float f; memcpy(&f, &v, 4); return f; }
static inline int __float_as_int(float f) { int v; memcpy(&v, &f, 4); return v; }
template <class T> static inline T min(T a, T b) { return b < a ? b : a; }
template <class T> static inline T max(T a, T b) { return a < b ? b : a; }
using ::isnan;
using ::isinf;
"""

# C parameter type (after dropping const/__restrict__) -> NumPy scalar type of the argument.
_SCALARS = {
    "u64": np.uint64, "unsigned long long": np.uint64, "i64": np.int64, "long long": np.int64,
    "u32": np.uint32, "unsigned int": np.uint32, "unsigned": np.uint32, "i32": np.int32,
    "int": np.int32, "u16": np.uint16, "u8": np.uint8, "float": np.float32,
    "double": np.float64, "bool": np.bool_,
}
_CTYPES = {np.uint64: ctypes.c_uint64, np.int64: ctypes.c_int64, np.uint32: ctypes.c_uint32,
           np.int32: ctypes.c_int32, np.uint16: ctypes.c_uint16, np.uint8: ctypes.c_uint8,
           np.float32: ctypes.c_float, np.float64: ctypes.c_double, np.bool_: ctypes.c_bool}
_KERNEL_RE = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(mlops_\w+)\s*\(([^)]*)\)', re.S)
_ANY_GLOBAL_RE = re.compile(r"__global__\s+void\s+(\w+)")


@dataclass(frozen=True)
class Param:
    """One kernel parameter: its C type, its name, and whether it is a pointer."""

    ctype: str
    name: str
    pointer: bool

    @property
    def scalar(self):
        """The NumPy scalar type a non-pointer argument is converted to."""
        return _SCALARS[self.ctype]


def _parse_params(text: str, kernel: str) -> tuple[Param, ...]:
    params = []
    for raw in filter(None, (p.strip() for p in text.split(","))):
        m = re.match(r"(.*?)([A-Za-z_]\w*)\s*$", raw, re.S)
        if not m:
            raise ValueError(f"kernel {kernel}: cannot read parameter {raw!r}")
        ctype, name = m.group(1), m.group(2)
        pointer = "*" in ctype
        ctype = re.sub(r"\b(const|__restrict__|volatile)\b|\*", " ", ctype)
        ctype = " ".join(ctype.split())
        if not pointer and ctype not in _SCALARS:
            raise ValueError(f"kernel {kernel}: parameter {name!r} has type {ctype!r}; "
                             f"scalars must be one of {sorted(_SCALARS)}")
        if name.startswith("mlops_emu_"):
            raise ValueError(f"kernel {kernel}: parameter names starting with mlops_emu_ are "
                             "the emulation's own")
        params.append(Param(ctype, name, pointer))
    return tuple(params)


@dataclass
class CudaSource:
    """The CUDA C++ source of one family of kernels (one ``kernels/*_cuda.py`` module).

    Every kernel is ``extern "C" __global__ void mlops_<name>(...)``, so its symbol
    is the same for NVRTC, nvcc and the host compiler; scalar parameters use the
    :data:`PRELUDE` types (``u64``, ``i64``, ``u32``, ``i32``, ``u8``) or
    ``float``/``double``. Sources register themselves in :data:`SOURCES`, which the
    PTX tests compile, all of them.
    """

    family: str
    code: str
    kernels: dict[str, tuple[Param, ...]] = field(init=False)

    def __post_init__(self):
        found = {name: _parse_params(params, name) for name, params in _KERNEL_RE.findall(self.code)}
        stray = set(_ANY_GLOBAL_RE.findall(self.code)) - set(found)
        if stray:
            raise ValueError(f"CUDA source {self.family!r}: kernels {sorted(stray)} must be "
                             'declared extern "C" __global__ void mlops_<name>(...)')
        if not found:
            raise ValueError(f"CUDA source {self.family!r} declares no kernel")
        for word in ("__shared__", "__syncthreads"):
            if word in self.code:
                raise ValueError(f"CUDA source {self.family!r} uses {word}: kernels are written "
                                 "one thread per item so that the serial emulation runs them")
        self.kernels = found
        SOURCES[self.family] = self

    @property
    def full(self) -> str:
        """The source as compiled: :data:`PRELUDE` then the kernels."""
        return PRELUDE + self.code

    @property
    def digest(self) -> str:
        return hashlib.blake2b(self.full.encode(), digest_size=12).hexdigest()

    def signature(self, kernel: str) -> tuple[Param, ...]:
        try:
            return self.kernels[kernel]
        except KeyError:
            raise ValueError(f"CUDA source {self.family!r} has no kernel {kernel!r}; it has "
                             f"{sorted(self.kernels)}") from None


#: Every CUDA source, by family (filled as the ``*_cuda`` modules are imported).
SOURCES: dict[str, CudaSource] = {}


def _dims(v, what: str) -> tuple[int, int]:
    t = (v,) if isinstance(v, (int, np.integer)) else tuple(v)
    if not 1 <= len(t) <= 2 or any(int(x) < 1 for x in t):
        raise ValueError(f"{what} must be a positive int or a pair of them, got {v!r}")
    return (int(t[0]), int(t[1]) if len(t) > 1 else 1)


def launch_grid(n: int, block: int = 256, most: int | None = None) -> int:
    """Blocks of ``block`` threads that cover ``n`` items, at least one; at most ``most``
    (for grid-strided kernels, whose threads loop over the items past the grid)."""
    blocks = max(1, -(-int(n) // block))
    return blocks if most is None else min(blocks, most)


def host_bytes(buf) -> np.ndarray:
    """A flat uint8 NumPy view of a host buffer (bytes, memoryview, NumPy array)."""
    if isinstance(buf, np.ndarray):
        return np.ascontiguousarray(buf).reshape(-1).view(np.uint8)
    return np.frombuffer(buf, np.uint8)


class Device:
    """Where kernels run: ``xp`` (the array module), transfers and :meth:`launch`.

    Counts the bytes it copies each way (``h2d_bytes``, ``d2h_bytes``), so that a
    caller (and a test) can see what crossed the bus.
    """

    name = "device"
    xp = np
    emulated = False

    def __init__(self):
        self.h2d_bytes = 0
        self.d2h_bytes = 0

    # -- arrays ---------------------------------------------------------------
    def is_device_array(self, a) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def to_device(self, a):
        """A device copy of host array ``a`` (a device array is returned as it is; on the
        emulator, where both are NumPy arrays, every call copies, as a transfer would)."""
        if self.is_device_array(a) and not self.emulated:
            return a
        a = np.ascontiguousarray(a)
        self.h2d_bytes += a.nbytes
        return self._to_device(a)

    def to_host(self, a, out: np.ndarray | None = None) -> np.ndarray:
        """A host (NumPy) copy of device array ``a``, into ``out`` if given."""
        if isinstance(a, np.ndarray) and not self.emulated:
            return a
        self.d2h_bytes += int(a.nbytes)
        return self._to_host(a, out)

    def as_bytes(self, obj):
        """A flat uint8 device array over the memory of ``obj`` (a device array or a
        tensor on this device), without copying."""
        raise NotImplementedError  # pragma: no cover - overridden

    def holds(self, buf) -> bool:
        """Whether ``buf`` is this device's memory (on the emulator: any NumPy array), as
        opposed to a host buffer that must be copied here first."""
        return self.is_device_array(buf) and (self.emulated or not isinstance(buf, np.ndarray))

    def device_bytes(self, buf):
        """``buf`` as a flat uint8 array on this device: a device array as it is, any host
        buffer (bytes, memoryview, NumPy array) copied here."""
        if self.holds(buf):
            return buf.reshape(-1).view(self.xp.uint8)
        return self.to_device(host_bytes(buf))

    def synchronize(self) -> None:
        pass

    # -- kernels --------------------------------------------------------------
    def launch(self, source: CudaSource, kernel: str, grid, block, args: tuple) -> None:
        """Run ``kernel`` of ``source`` over ``grid`` blocks of ``block`` threads.

        Scalars are converted to the kernel's parameter types (a CUDA launch packs
        arguments by their C type, so a Python int passed for a ``u32`` would be
        misread); pointer parameters take this device's arrays.
        """
        params = source.signature(kernel)
        if len(args) != len(params):
            raise TypeError(f"{kernel} takes {len(params)} arguments "
                            f"({', '.join(p.name for p in params)}), got {len(args)}")
        conv = []
        for p, a in zip(params, args):
            if p.pointer:
                if not self.is_device_array(a):
                    raise TypeError(f"{kernel}: argument {p.name!r} must be an array on "
                                    f"{self.name}, got {type(a).__name__}")
                conv.append(a)
            else:
                conv.append(p.scalar(a))
        self._launch(source, kernel, _dims(grid, "grid"), _dims(block, "block"), conv)


class _Ready:
    """A copy that is already done (the emulator's)."""

    def __init__(self, host: np.ndarray):
        self._host = host

    def result(self) -> np.ndarray:
        return self._host


class _PinnedCopy:
    """A device-to-host copy in flight: ``result()`` waits for its event."""

    def __init__(self, host: np.ndarray, event, source):
        self._host, self._event, self._source = host, event, source  # source: kept alive

    def result(self) -> np.ndarray:
        self._event.synchronize()
        self._source = None
        return self._host


# ----------------------------------------------------------------------------- emulation


def host_compiler() -> str | None:
    """The C++ compiler the emulation uses: ``$CXX``, else ``c++``/``g++``/``clang++``."""
    for cand in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if cand and shutil.which(cand):
            return cand
    return None


def _emulation_wrappers(src: CudaSource) -> str:
    out = []
    for name, params in src.kernels.items():
        decl = ", ".join(f"{p.ctype}{'*' if p.pointer else ''} {p.name}" for p in params)
        call = ", ".join(p.name for p in params)
        sep = ", " if decl else ""
        out.append(f"""
extern "C" void mlops_emulate_{name}(unsigned mlops_emu_gx, unsigned mlops_emu_gy, unsigned mlops_emu_bx, unsigned mlops_emu_by,
                                      int mlops_emu_reverse{sep}{decl}) {{
    gridDim.x = mlops_emu_gx; gridDim.y = mlops_emu_gy; gridDim.z = 1;
    blockDim.x = mlops_emu_bx; blockDim.y = mlops_emu_by; blockDim.z = 1;
    unsigned long long mlops_emu_total_ = (unsigned long long)mlops_emu_gx * mlops_emu_gy * mlops_emu_bx * mlops_emu_by;
    for (unsigned long long mlops_emu_k_ = 0; mlops_emu_k_ < mlops_emu_total_; mlops_emu_k_++) {{
        unsigned long long mlops_emu_t_ = mlops_emu_reverse ? mlops_emu_total_ - 1 - mlops_emu_k_ : mlops_emu_k_;
        threadIdx.x = (unsigned)(mlops_emu_t_ % mlops_emu_bx); mlops_emu_t_ /= mlops_emu_bx;
        threadIdx.y = (unsigned)(mlops_emu_t_ % mlops_emu_by); mlops_emu_t_ /= mlops_emu_by;
        blockIdx.x = (unsigned)(mlops_emu_t_ % mlops_emu_gx); mlops_emu_t_ /= mlops_emu_gx;
        blockIdx.y = (unsigned)mlops_emu_t_;
        threadIdx.z = 0; blockIdx.z = 0;
        {name}({call});
    }}
}}""")
    return "\n".join(out)


def emulation_source(src: CudaSource) -> str:
    """The C++ translation unit the emulation compiles: shim, prelude, kernels, launchers."""
    return SHIM + src.full + _emulation_wrappers(src)


def _cache_dir() -> str:
    base = os.environ.get("MLOPS_CUDA_EMU_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "mlops-engine", "cuda-emulator")
    os.makedirs(base, exist_ok=True)
    return base


class EmulatedDevice(Device):
    """The host, standing in for a GPU: kernels compiled by the C++ compiler, NumPy arrays.

    ``reverse=True`` runs every launch's threads in reverse order.
    """

    name = "emulator"
    xp = np
    emulated = True

    def __init__(self, reverse: bool = False):
        super().__init__()
        self.reverse = bool(reverse)
        self._libs: dict[str, ctypes.CDLL] = {}

    def is_device_array(self, a) -> bool:
        return isinstance(a, np.ndarray)

    def _to_device(self, a):
        return a.copy()

    def _to_host(self, a, out):
        if out is None:
            return np.array(a, copy=True)
        np.copyto(out, a)
        return out

    def to_host_async(self, a) -> _Ready:
        """Start copying device array ``a`` to the host; ``.result()`` is the host array."""
        return _Ready(self.to_host(a))

    def to_device_async(self, host: np.ndarray, dst, offset: int) -> None:
        """Copy host bytes into ``dst[offset:]``; here at once (a real device queues it)."""
        dst[offset:offset + host.size] = host
        self.h2d_bytes += host.nbytes

    def wait(self, event) -> None:
        """Make the following launches wait for ``event`` (nothing to wait for here)."""

    def as_bytes(self, obj):
        """A uint8 view of a NumPy array or a CPU torch tensor (the stand-ins for device
        memory here)."""
        if isinstance(obj, np.ndarray):
            a = np.ascontiguousarray(obj)
        elif hasattr(obj, "detach") and hasattr(obj, "numpy"):  # a torch tensor on the CPU
            t = obj.detach().contiguous().reshape(-1)
            import torch

            a = t.view(torch.uint8).numpy() if t.numel() else np.empty(0, np.uint8)
        else:
            raise TypeError(f"expected a NumPy array or a tensor, got {type(obj).__name__}")
        return a.reshape(-1).view(np.uint8)

    def library(self, src: CudaSource) -> ctypes.CDLL:
        lib = self._libs.get(src.family)
        if lib is None:
            lib = self._libs[src.family] = _compile_host(src)
        return lib

    def _launch(self, source, kernel, grid, block, args):
        fn = getattr(self.library(source), f"mlops_emulate_{kernel}")
        c_args = [ctypes.c_uint(grid[0]), ctypes.c_uint(grid[1]), ctypes.c_uint(block[0]),
                  ctypes.c_uint(block[1]), ctypes.c_int(1 if self.reverse else 0)]
        for p, a in zip(source.signature(kernel), args):
            if p.pointer:
                if not a.flags.c_contiguous:
                    raise ValueError(f"{kernel}: argument {p.name!r} must be C-contiguous")
                c_args.append(ctypes.c_void_p(a.ctypes.data))
            else:
                c_args.append(_CTYPES[p.scalar](a))
        fn.restype = None
        fn(*c_args)


_COMPILE_LOCK = threading.Lock()


def _compile_host(src: CudaSource) -> ctypes.CDLL:
    cxx = host_compiler()
    if cxx is None:
        raise BackendUnavailable("the CUDA emulation needs a C++ compiler (install g++, or set $CXX)")
    code = emulation_source(src)
    digest = hashlib.blake2b((code + cxx).encode(), digest_size=12).hexdigest()
    path = os.path.join(_cache_dir(), f"{src.family}-{digest}.so")
    with _COMPILE_LOCK:
        if not os.path.exists(path):
            fd, tmp_src = tempfile.mkstemp(suffix=".cpp", dir=os.path.dirname(path))
            with os.fdopen(fd, "w") as f:
                f.write(code)
            tmp_so = tmp_src[:-4] + ".so"
            try:
                res = subprocess.run([cxx, "-O2", "-std=c++14", "-shared", "-fPIC", "-w",
                                      "-fno-fast-math", "-o", tmp_so, tmp_src],
                                     capture_output=True, text=True)
                if res.returncode:
                    raise RuntimeError(f"emulating CUDA source {src.family!r}: {cxx} failed:\n"
                                       f"{res.stderr[-4000:]}")
                os.replace(tmp_so, path)  # atomic: a concurrent process sees all or nothing
            finally:
                for p in (tmp_src, tmp_so):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(p)
    return ctypes.CDLL(path)


# ----------------------------------------------------------------------------- CuPy


class CupyDevice(Device):
    """A CUDA GPU through CuPy; sources compiled by NVRTC, once per device."""

    emulated = False

    def __init__(self, cupy, index: int = 0):
        super().__init__()
        self.cp = self.xp = cupy
        self.index = index
        self.name = f"cuda:{index}"
        self._modules: dict[str, object] = {}
        self._copy_stream = None
        self._h2d_stream = None

    def is_device_array(self, a) -> bool:
        return isinstance(a, self.cp.ndarray)

    def _to_device(self, a):
        with self.cp.cuda.Device(self.index):
            return self.cp.asarray(a)

    def _to_host(self, a, out):
        if out is None:
            return self.cp.asnumpy(a)
        a.get(out=out)
        return out

    def as_bytes(self, obj):
        """A uint8 CuPy view of a CuPy array or a CUDA torch tensor (zero-copy)."""
        cp = self.cp
        if isinstance(obj, cp.ndarray):
            a = cp.ascontiguousarray(obj)
        elif hasattr(obj, "is_cuda") and obj.is_cuda:
            import torch

            t = obj.detach().contiguous().reshape(-1)
            t = t.view(torch.uint8) if t.numel() else t.new_empty(0, dtype=torch.uint8)
            a = cp.asarray(t)  # __cuda_array_interface__: shares the tensor's memory
        else:
            raise TypeError(f"expected a CuPy array or a CUDA tensor, got {type(obj).__name__}")
        return a.reshape(-1).view(cp.uint8)

    def synchronize(self) -> None:
        self.cp.cuda.Device(self.index).synchronize()

    def to_device_async(self, host: np.ndarray, dst, offset: int):
        """Queue a copy of host bytes (pinned memory, for the copy to run beside kernels)
        into device array ``dst[offset:]`` on the copy stream; returns its event, for
        :meth:`wait`."""
        cp = self.cp
        host = np.ascontiguousarray(host)
        with cp.cuda.Device(self.index):
            if self._h2d_stream is None:
                self._h2d_stream = cp.cuda.Stream(non_blocking=True)
            if host.nbytes:
                cp.cuda.runtime.memcpyAsync(dst.data.ptr + offset * dst.itemsize,
                                            host.ctypes.data, host.nbytes,
                                            cp.cuda.runtime.memcpyHostToDevice,
                                            self._h2d_stream.ptr)
            self.h2d_bytes += host.nbytes
            return self._h2d_stream.record()

    def wait(self, event) -> None:
        """Make the launches queued after this on the current stream wait for ``event``."""
        self.cp.cuda.get_current_stream().wait_event(event)

    def to_host_async(self, a) -> _PinnedCopy:
        """Start copying device array ``a`` into pinned host memory on a stream of its own
        (after the work queued so far on the current stream); ``.result()`` waits for it
        and gives the host array. The caller works meanwhile (the registry compresses and
        packs the previous batch of chunks)."""
        cp = self.cp
        with cp.cuda.Device(self.index):
            a = cp.ascontiguousarray(a)
            nbytes = int(a.nbytes)
            mem = cp.cuda.alloc_pinned_memory(max(nbytes, 1))
            host = np.frombuffer(mem, dtype=a.dtype, count=a.size)
            if self._copy_stream is None:
                self._copy_stream = cp.cuda.Stream(non_blocking=True)
            stream = self._copy_stream
            stream.wait_event(cp.cuda.get_current_stream().record())
            if nbytes:
                cp.cuda.runtime.memcpyAsync(host.ctypes.data, a.data.ptr, nbytes,
                                            cp.cuda.runtime.memcpyDeviceToHost, stream.ptr)
            done = stream.record()
        self.d2h_bytes += nbytes
        return _PinnedCopy(host, done, a)

    def module(self, src: CudaSource):
        mod = self._modules.get(src.family)
        if mod is None:
            with self.cp.cuda.Device(self.index):
                mod = self.cp.RawModule(code=src.full, options=("--std=c++14",),
                                        name_expressions=None)
            self._modules[src.family] = mod
        return mod

    def _launch(self, source, kernel, grid, block, args):
        fn = self.module(source).get_function(kernel)
        with self.cp.cuda.Device(self.index):
            fn(grid, block, tuple(args))


# ----------------------------------------------------------------------------- selection

_STATE = threading.local()
_CUPY: list = []  # [CupyDevice] once loaded, [exception] if it cannot be


def cuda_driver_version() -> int | None:
    """The CUDA driver's version (e.g. 12040), or None where no driver is installed."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    v = ctypes.c_int()
    try:
        if lib.cuDriverGetVersion(ctypes.byref(v)) != 0:
            return None
    except AttributeError:
        return None
    return v.value


def install_hint() -> str:
    """The ``pip install`` that gives this machine a working ``cuda`` backend."""
    drv = cuda_driver_version()
    if drv is None:
        return ("no CUDA driver was found (libcuda.so.1): the cuda backend needs an NVIDIA "
                "GPU; on a GPU node: pip install 'mlops-engine[gpu]'")
    major = drv // 1000
    wheel = "cupy-cuda13x" if major >= 13 else "cupy-cuda12x" if major == 12 else "cupy-cuda11x"
    extra = "gpu13" if major >= 13 else "gpu"
    return (f"the CUDA {major} driver is installed: pip install 'mlops-engine[{extra}]' "
            f"(or pip install {wheel})")


def cupy_device() -> CupyDevice:
    """The GPU (device 0, or ``$MLOPS_CUDA_DEVICE``), loading CuPy on first use.

    Raises :class:`BackendUnavailable` with :func:`install_hint` where CuPy or a GPU
    is missing.
    """
    if not _CUPY:
        with _COMPILE_LOCK:
            if not _CUPY:
                try:
                    import cupy

                    index = int(os.environ.get("MLOPS_CUDA_DEVICE", "0"))
                    if cupy.cuda.runtime.getDeviceCount() <= index:
                        raise RuntimeError(f"no CUDA device {index}")
                    _CUPY.append(CupyDevice(cupy, index))
                except Exception as exc:  # ImportError, CUDARuntimeError, no device
                    _CUPY.append(exc)
    dev = _CUPY[0]
    if isinstance(dev, Exception):
        raise BackendUnavailable(f"the cuda backend cannot run here ({type(dev).__name__}: "
                                 f"{dev}); {install_hint()}")
    return dev


def gpu_available() -> bool:
    """Whether a CuPy GPU can be used (cached after the first call); never raises."""
    try:
        cupy_device()
        return True
    except BackendUnavailable:
        return False


def current() -> Device:
    """The device kernels run on: the emulator inside :func:`emulated`, else the GPU."""
    dev = getattr(_STATE, "device", None)
    return dev if dev is not None else cupy_device()


def emulator(reverse: bool = False) -> EmulatedDevice:
    """A new :class:`EmulatedDevice`."""
    return EmulatedDevice(reverse=reverse)


@contextlib.contextmanager
def emulated(reverse: bool = False):
    """Run the ``cuda`` backend's functions on the host emulation in this thread.

    Inside, :func:`current` is an :class:`EmulatedDevice`, NumPy arrays count as
    device arrays, and CPU torch tensors stand in for CUDA tensors (so the GPU paths
    of the registry and the checkpointer run end to end on a machine without a GPU).
    """
    prev = getattr(_STATE, "device", None)
    _STATE.device = dev = EmulatedDevice(reverse=reverse)
    try:
        yield dev
    finally:
        _STATE.device = prev


def emulating() -> bool:
    return getattr(_STATE, "device", None) is not None


def is_device_object(obj) -> bool:
    """A CuPy array, an object with ``__cuda_array_interface__``, a CUDA torch tensor; inside
    :func:`emulated`, also a CPU torch tensor. Cheap: imports nothing."""
    if emulating():
        return type(obj).__module__.startswith("torch") and hasattr(obj, "is_cuda")
    if getattr(obj, "is_cuda", False):
        return True
    return hasattr(obj, "__cuda_array_interface__")


# The host bytes from which the cuda backend takes host inputs by default (smaller inputs
# stay on the CPU: the transfer and launches would cost more than they save).
MIN_HOST_BYTES = 64 << 20


def min_host_bytes() -> int:
    v = os.environ.get("MLOPS_CUDA_MIN_BYTES")
    return MIN_HOST_BYTES if v is None else int(v)


def usable(*args) -> bool:
    """The ``is_usable_for`` predicate of every ``cuda`` backend: device arrays, or host
    arrays of at least :data:`MIN_HOST_BYTES` (``$MLOPS_CUDA_MIN_BYTES``) together when a
    GPU is present."""
    if any(hasattr(a, "__cuda_array_interface__") for a in args):
        return True
    total = sum(a.nbytes for a in args if isinstance(a, np.ndarray))
    return total >= min_host_bytes() and gpu_available()


def loader(module: str, kernel: str):
    """The registry loader of a ``cuda`` backend: fails (with the install hint) where no GPU
    can run it, so the registry lists it as unusable and never picks it."""

    def load():
        cupy_device()
        import importlib

        return getattr(importlib.import_module(module, __package__), kernel)

    load.module = module  # where the tests find the function to run it on the emulator
    return load


# ----------------------------------------------------------------------------- PTX


def nvrtc_library() -> str | None:
    """The NVRTC shared library: the ``nvidia-cuda-nvrtc`` wheel's, else the system's."""
    import glob
    import importlib.util

    for pkg in ("nvidia",):
        spec = importlib.util.find_spec(pkg)
        for root in (spec.submodule_search_locations or []) if spec else []:
            found = sorted(glob.glob(os.path.join(root, "**", "libnvrtc.so*"), recursive=True))
            found = [f for f in found if "builtins" not in f]
            if found:
                return found[-1]
    for name in ("libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"):
        try:
            ctypes.CDLL(name)
            return name
        except OSError:
            continue
    return None


def compile_ptx_nvrtc(src: CudaSource, arch: str = "compute_90", lib: str | None = None) -> str:
    """Compile ``src`` with NVRTC, the compiler CuPy uses, to PTX; needs no GPU.

    Raises RuntimeError with NVRTC's log on an error.
    """
    path = lib or nvrtc_library()
    if path is None:
        raise FileNotFoundError("NVRTC was not found: pip install nvidia-cuda-nvrtc")
    nv = ctypes.CDLL(path)
    prog = ctypes.c_void_p()
    code = src.full.encode()
    if nv.nvrtcCreateProgram(ctypes.byref(prog), code, f"{src.family}.cu".encode(), 0, None, None):
        raise RuntimeError("nvrtcCreateProgram failed")
    try:
        opts = [f"--gpu-architecture={arch}".encode(), b"--std=c++14"]
        arr = (ctypes.c_char_p * len(opts))(*opts)
        rc = nv.nvrtcCompileProgram(prog, len(opts), arr)
        size = ctypes.c_size_t()
        nv.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        nv.nvrtcGetProgramLog(prog, log)
        if rc:
            raise RuntimeError(f"NVRTC failed on CUDA source {src.family!r}:\n"
                               f"{log.value.decode(errors='replace')}")
        nv.nvrtcGetPTXSize(prog, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        nv.nvrtcGetPTX(prog, ptx)
        return ptx.value.decode()
    finally:
        nv.nvrtcDestroyProgram(ctypes.byref(prog))


def nvcc_path() -> str | None:
    """``nvcc`` on PATH, in ``$CUDA_HOME/bin`` or in the ``nvidia-cuda-nvcc`` wheel."""
    found = shutil.which("nvcc")
    if found:
        return found
    for base in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if base and os.access(os.path.join(base, "bin", "nvcc"), os.X_OK):
            return os.path.join(base, "bin", "nvcc")
    return None


def compile_ptx_nvcc(src: CudaSource, arch: str = "sm_90", nvcc: str | None = None) -> str:
    """Compile ``src`` with ``nvcc --ptx`` (warnings as errors); needs no GPU."""
    exe = nvcc or nvcc_path()
    if exe is None:
        raise FileNotFoundError("nvcc was not found (install the CUDA toolkit or the "
                                "nvidia-cuda-nvcc wheel)")
    with tempfile.TemporaryDirectory() as d:
        cu = os.path.join(d, f"{src.family}.cu")
        with open(cu, "w") as f:
            f.write(src.full)
        out = os.path.join(d, f"{src.family}.ptx")
        res = subprocess.run([exe, "--ptx", f"-arch={arch}", "-std=c++14", "-Werror",
                              "all-warnings", "-o", out, cu], capture_output=True, text=True)
        if res.returncode:
            raise RuntimeError(f"nvcc failed on CUDA source {src.family!r}:\n{res.stderr[-4000:]}")
        with open(out) as f:
            return f.read()


def load_all_sources() -> dict[str, CudaSource]:
    """Import every ``*_cuda`` module of the package, so :data:`SOURCES` holds them all."""
    import importlib

    here = os.path.dirname(os.path.abspath(__file__))
    for fn in sorted(os.listdir(here)):
        if fn.endswith("_cuda.py"):
            importlib.import_module(f".{fn[:-3]}", __package__)
    return dict(SOURCES)


__all__ = [
    "PRELUDE", "SHIM", "SOURCES", "CudaSource", "CupyDevice", "Device", "EmulatedDevice",
    "compile_ptx_nvcc", "compile_ptx_nvrtc", "cupy_device", "current", "emulated", "emulator",
    "gpu_available", "install_hint", "is_device_object", "launch_grid", "load_all_sources",
    "loader", "usable",
]
