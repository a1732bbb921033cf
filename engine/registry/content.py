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

The content id is the manifest's id (as for datasets), so the same bytes give the
same id however they were registered, and chunks deduplicate across versions.
"""

from __future__ import annotations

import os

from ..store import Store
from . import tensors
from .models import is_profile


def _bytes_content(st: Store, data, filename: str, fmt: str) -> dict:
    from ..data import manifest as mf
    from ..data.ingest import store_bytes

    man, blob = store_bytes(data, filename, st)
    return {"format": fmt, "id": mf.version_id(man), "size": len(data), "files": 1,
            "content": {"manifest": blob, "file": filename}}


def _check_filename(filename, default: str) -> str:
    if filename is None:
        return default
    if not isinstance(filename, str) or not filename or "/" in filename or filename in (".", ".."):
        raise ValueError(f"filename must be a plain file name (no '/'), got {filename!r}")
    return filename


def store_content(st: Store, obj, kind: str, filename, progress) -> dict:
    """Store ``obj``; returns ``{"format", "id", "size", "files", "content"}``."""
    from ..data.ingest import store_tree
    from ..data.version import Version as DataVersion

    if isinstance(obj, (bytes, bytearray, memoryview)):
        return _bytes_content(st, obj, _check_filename(filename, "data.bin"), "bytes")
    if is_profile(obj):
        return _bytes_content(st, obj.to_bytes(), _check_filename(filename, "profile.arrow"),
                              "profile")
    mod = type(obj).__module__ or ""
    if mod.startswith("torch") and hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()  # an nn.Module: its weights
    if isinstance(obj, dict):
        if tensors.is_flat_tensor_dict(obj):
            return _bytes_content(st, tensors.dumps(obj),
                                  _check_filename(filename, "model.safetensors"), "safetensors")
        if tensors.looks_like_state_dict(obj):
            return _bytes_content(st, tensors.torch_dumps(obj),
                                  _check_filename(filename, "state_dict.pt"), "torch")
        raise TypeError("a dict given to register() must be a state dict (names -> tensors or "
                        "NumPy arrays, possibly nested as an optimizer's)")
    if isinstance(obj, str) and kind == "dataset" and not os.path.exists(obj):
        from ..data.version import resolve

        obj = resolve(st, obj)
    if isinstance(obj, DataVersion):
        rec = obj.record
        return {"format": "dataset", "id": obj.id, "size": obj.bytes, "files": obj.files,
                "content": {"manifest": rec["manifest"], "data": obj.ref}}
    if isinstance(obj, (str, os.PathLike)):
        path = os.fspath(obj)
        if not os.path.lexists(path):
            raise FileNotFoundError(f"cannot register {path!r}: no such file or directory")
        t = store_tree(path, st, f"register {os.path.basename(path)}", progress)
        content = {"manifest": t.blob}
        if os.path.isfile(path):
            content["file"] = os.path.basename(t.source)
        return {"format": "files", "id": t.id, "size": t.bytes, "files": t.files,
                "content": content}
    raise TypeError(f"register() takes a path, bytes, a state dict, an nn.Module, a Profile or a "
                    f"dataset version; got {type(obj).__name__}")
