"""Storing what ``Registry.register`` is given: every artifact is a manifest of files.

=============================  ===========  ==================================
given                          format       stored as
=============================  ===========  ==================================
a directory                    files        its tree (like a dataset snapshot)
a file                         files        one file, its base name
bytes                          bytes        one file (``filename``, default data.bin)
flat tensor dict / nn.Module   safetensors  model.safetensors (no pickle)
other state dict (optimizer)   torch        state_dict.pt (torch.save)
monitor Profile                profile      profile.arrow
dataset version                dataset      the version's own manifest
=============================  ===========  ==================================

With ``kind="profile"``, bytes and a file are stored as a profile too, once checked.

Registering is two steps: :func:`prepare` checks the content against its kind (a
profile must be one, a ``.safetensors`` file must have a sound header, and the
kind's validators must accept it, see :mod:`.validators`) and touches no store, so
content that is refused leaves nothing behind; :func:`store_content` stores it.

The content id is the manifest's id (as for datasets), so the same bytes give the
same id however they were registered, and chunks deduplicate across versions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..store import Store
from . import tensors, validators
from .errors import InvalidContent, RegistryCorruption


@dataclass
class Content:
    """Checked content, ready to store."""

    format: str  # "bytes", "profile", "safetensors", "torch", "files" or "dataset"
    data: object  # bytes (one-file formats), a path ("files"), a Version or reference ("dataset")
    filename: str | None = None  # the stored file's name (one-file formats)


def _check_filename(filename, default: str) -> str:
    if filename is None:
        return default
    if not isinstance(filename, str) or not filename or "/" in filename or filename in (".", ".."):
        raise ValueError(f"filename must be a plain file name (no '/'), got {filename!r}")
    return filename


def _claimed(obj, filename) -> Content | None:
    """The content of an object that a kind's hooks claim (a monitor ``Profile``), else None.

    The layer that owns such objects serializes them (:mod:`.validators`); only objects
    with a ``to_bytes()`` method are asked about, so bytes, files and state dicts load no
    hooks.
    """
    if not callable(getattr(obj, "to_bytes", None)):
        return None
    found = validators.claiming_kind(obj)
    if found is None:
        return None
    kind, hooks = found
    default = getattr(hooks, "filename", f"{kind}.bin")
    return Content(kind, hooks.dumps(obj), _check_filename(filename, default))


def _profile(obj, name: str, filename) -> Content:
    claimed = _claimed(obj, filename)
    if claimed is not None and claimed.format == "profile":
        return claimed
    if isinstance(obj, (bytes, bytearray, memoryview)):
        validators.check("profile", obj, "the bytes given", name)
        return Content("profile", bytes(obj), _check_filename(filename, "profile.arrow"))
    if isinstance(obj, (str, os.PathLike)):
        path = os.fspath(obj)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                data = f.read()
            validators.check("profile", data, f"file {path!r}", name)
            return Content("profile", data, _check_filename(filename, os.path.basename(path)))
        if os.path.isdir(path):
            raise InvalidContent(f"cannot register {name!r} as a profile: {path!r} is a "
                                 f"directory; expected {validators.expected('profile')}")
        raise FileNotFoundError(f"cannot register {path!r}: no such file or directory")
    raise InvalidContent(f"cannot register {name!r} as a profile: got a {type(obj).__name__}; "
                         f"expected {validators.expected('profile')}")


def _check_file(path: str, kind: str, name: str) -> None:
    """A one-file artifact: state dict files by their extension, then the kind's validators."""
    base = os.path.basename(path)
    if base.endswith(".safetensors"):
        try:
            tensors.check_file(path, base)
        except RegistryCorruption as exc:
            raise InvalidContent(f"cannot register {name!r} as a {kind}: {base} is not a "
                                 f"safetensors state dict ({exc})") from None
    elif base.endswith((".pt", ".pth")):
        with open(path, "rb") as f:
            head = f.read(4)
        if not head.startswith((b"PK\x03\x04", b"\x80")):  # torch.save: a zip (or legacy pickle)
            raise InvalidContent(f"cannot register {name!r} as a {kind}: {base} is not a "
                                 "torch.save file (neither a zip archive nor a pickle)")
    if validators.validators_for(kind):
        with open(path, "rb") as f:
            validators.check(kind, f.read(), f"file {path!r}", name)


def prepare(obj, kind: str, name: str, filename) -> Content:
    """Check ``obj`` as content of ``kind`` and serialize it; touches no store."""
    from ..data.version import Version as DataVersion

    if kind == "profile":
        return _profile(obj, name, filename)
    if isinstance(obj, tensors.TensorFile):  # a file laid out over tensors (checkpoints)
        if validators.validators_for(kind) or not obj.on_device():
            obj = obj.to_bytes()
        else:
            return Content("bytes", obj, _check_filename(filename, "data.bin"))
    if isinstance(obj, (bytes, bytearray, memoryview)):
        validators.check(kind, obj, "the bytes given", name)
        return Content("bytes", obj, _check_filename(filename, "data.bin"))
    claimed = _claimed(obj, filename)
    if claimed is not None:
        return claimed
    mod = type(obj).__module__ or ""
    if mod.startswith("torch") and hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()  # an nn.Module: its weights
    if isinstance(obj, dict):
        if tensors.is_flat_tensor_dict(obj):
            tf = tensors.layout(obj)
            # tensors in GPU memory stay there: chunked and hashed on the device at store time
            return Content("safetensors", tf if tf.on_device() else tf.to_bytes(),
                           _check_filename(filename, "model.safetensors"))
        if tensors.looks_like_state_dict(obj):
            return Content("torch", tensors.torch_dumps(obj),
                           _check_filename(filename, "state_dict.pt"))
        raise TypeError("a dict given to register() must be a state dict (names -> tensors or "
                        "NumPy arrays, an optimizer's state_dict(), or a checkpoint dict "
                        "holding them)")
    if isinstance(obj, DataVersion) or (isinstance(obj, str) and kind == "dataset"
                                        and not os.path.exists(obj)):
        return Content("dataset", obj)
    if isinstance(obj, (str, os.PathLike)):
        path = os.fspath(obj)
        if not os.path.lexists(path):
            raise FileNotFoundError(f"cannot register {path!r}: no such file or directory")
        if os.path.isfile(path):
            _check_file(path, kind, name)
        return Content("files", path)
    raise TypeError(f"register() takes a path, bytes, a state dict, an nn.Module, a Profile or a "
                    f"dataset version; got {type(obj).__name__}")


def store_content(st: Store, c: Content, progress) -> dict:
    """Store prepared content; returns ``{"format", "id", "size", "files", "content"}``."""
    from ..data import manifest as mf
    from ..data.ingest import store_bytes, store_tree

    if c.format == "dataset":
        obj = c.data
        if isinstance(obj, str):
            from ..data.version import resolve

            obj = resolve(st, obj)
        return {"format": "dataset", "id": obj.id, "size": obj.bytes, "files": obj.files,
                "content": {"manifest": obj.record["manifest"], "data": obj.ref}}
    if c.format == "files":
        t = store_tree(c.data, st, f"register {os.path.basename(c.data)}", progress)
        content = {"manifest": t.blob}
        if os.path.isfile(c.data):
            content["file"] = os.path.basename(t.source)
        return {"format": "files", "id": t.id, "size": t.bytes, "files": t.files,
                "content": content}
    if isinstance(c.data, tensors.TensorFile):
        from ..kernels import cuda_runtime

        size = c.data.size
        man, blob = store_bytes(c.data.device_buffer(cuda_runtime.current()), c.filename, st,
                                on_device=True)
    else:
        size = memoryview(c.data).nbytes
        man, blob = store_bytes(c.data, c.filename, st)
    return {"format": c.format, "id": mf.version_id(man), "size": size,
            "files": 1, "content": {"manifest": blob, "file": c.filename}}
