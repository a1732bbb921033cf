"""What the registry learns from the monitor: the ``profile`` kind.

The registry sits below the monitor and never imports it, so it finds
:data:`PROFILE` (how to check, recognize and load a profile) through the
``mlops_engine.kinds`` entry point declared in pyproject.toml, the first time it
needs the ``profile`` kind. Importing this module registers it too, for a source
tree used without installing it. :func:`load_profile` is the monitor's way to read
a profile back from the registry.
"""

from __future__ import annotations

from ..registry import RegistryError
from ..registry.validators import register_kind
from .profile_format import Profile


def validate_profile(data: bytes) -> None:
    """Raise ``ValueError`` unless ``data`` is a readable mlops-engine profile.

    Examples
    --------
    >>> validate_profile(b"not a profile")
    Traceback (most recent call last):
    ...
    engine.monitor.profile_base.ProfileFormatError: data is not an mlops-engine profile (not an Arrow IPC file)
    """
    try:
        Profile.from_bytes(data)
    except (KeyError, IndexError) as exc:  # an Arrow file with the profile's tag, damaged inside
        raise ValueError(f"damaged mlops-engine profile: {exc!r}") from None


def load_profile(registry, ref) -> Profile:
    """The :class:`Profile` registered in ``registry`` as ``ref`` (a ``profile`` artifact).

    Uses only the registry's public API; every chunk is verified as it is read.

    Examples
    --------
    >>> import tempfile
    >>> from engine.monitor import profile
    >>> from engine.registry import Registry
    >>> reg = Registry(tempfile.mkdtemp() + "/store", index_path=":memory:")
    >>> _ = reg.register("ref", profile({"x": [1.0, 2.0, 3.0]}))
    >>> load_profile(reg, "ref").n_rows
    3
    """
    mv = registry.get(ref)
    if mv.format != "profile" and not (mv.kind == "profile" and mv.content.get("file")):
        raise RegistryError(f"{mv.ref} is a {mv.format!r} artifact, not a profile")
    return Profile.from_bytes(registry.read_bytes(mv), mv.ref)


class ProfileKind:
    """The hooks of the ``profile`` kind (see :mod:`engine.registry.validators`)."""

    validate = staticmethod(validate_profile)
    load = staticmethod(load_profile)
    filename = "profile.arrow"

    @staticmethod
    def claims(obj) -> bool:
        """``obj`` is a monitor Profile."""
        return isinstance(obj, Profile)

    @staticmethod
    def dumps(obj: Profile) -> bytes:
        return obj.to_bytes()


#: The object the ``mlops_engine.kinds`` entry point ``profile`` names.
PROFILE = ProfileKind()

register_kind("profile", PROFILE)
