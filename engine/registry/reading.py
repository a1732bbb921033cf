"""Reading registered content back: files, bytes, state dicts and profiles."""

from __future__ import annotations

import os
import warnings

from .errors import RegistryError
from .models import ModelVersion, single_file

FRAMEWORKS = (None, "pt", "np")


class RegistryReads:
    """The content-reading methods of :class:`~engine.registry.Registry` (a mixin)."""

    def _manifest(self, mv: ModelVersion):
        from ..data import manifest as mf

        return mf.from_bytes(self.store.get_blob(mv.content["manifest"]), f"manifest of {mv.ref}")

    def pull(self, ref, dest, *, paths=None, progress: bool | None = None) -> str:
        """Write the files of ``ref`` under ``dest``; returns the file's path for a one-file
        artifact, else ``dest``. Every chunk is verified against its id."""
        from ..data.restore import checkout_manifest

        mv = self.get(ref)
        dest, nfiles, _links, _bytes = checkout_manifest(self.store, self._manifest(mv), mv.ref,
                                                         dest, paths, progress)
        single = mv.content.get("file")
        return os.path.join(dest, single) if single and paths is None else dest

    def read_bytes(self, ref) -> bytes:
        """The bytes of a one-file artifact (verified)."""
        mv = self.get(ref)
        return single_file(self.store, self._manifest(mv), mv.ref)[1]

    def load_state_dict(self, ref, framework: str | None = None):
        """A state dict registered with ``register(name, state_dict)``: torch tensors
        (NumPy arrays with ``framework="np"``; ``"pt"`` forces torch; None: as written).
        One saved with ``torch.save`` (an optimizer's) loads as torch only."""
        from . import tensors

        if framework not in FRAMEWORKS:
            raise ValueError(f"framework must be one of {', '.join(map(repr, FRAMEWORKS))}; "
                             f"got {framework!r}")
        mv = self.get(ref)
        fmt = mv.format
        single = mv.content.get("file") or ""  # null in the commit: not a one-file artifact
        if fmt == "files" and single.endswith(".safetensors"):
            fmt = "safetensors"  # a .safetensors file registered by path
        elif fmt == "files" and single.endswith((".pt", ".pth")):
            fmt = "torch"
        if fmt not in ("safetensors", "torch"):
            raise RegistryError(f"{mv.ref} is a {mv.format!r} artifact, not a state dict "
                                "(a state dict, or one .safetensors/.pt/.pth file)")
        if fmt == "torch" and framework == "np":
            raise ValueError(f"{mv.ref} was saved with torch.save (an optimizer's or a nested "
                             "state dict) and loads as torch only; pass framework=None or 'pt'")
        data = single_file(self.store, self._manifest(mv), mv.ref)[1]
        if fmt == "torch":
            return tensors.torch_loads(data)
        return tensors.loads(data, framework, mv.ref)

    def load_profile(self, ref):
        """Deprecated: use ``engine.monitor.load_profile(registry, ref)``.

        The registry does not know profiles (the monitor, a layer above it, does): this
        reaches the loader the monitor declares for the ``profile`` kind
        (:func:`~engine.registry.validators.kind_loader`), without importing it.
        """
        from .validators import kind_loader

        warnings.warn("Registry.load_profile is deprecated; use "
                      "engine.monitor.load_profile(registry, ref)", DeprecationWarning,
                      stacklevel=2)
        return kind_loader("profile")(self, ref)
