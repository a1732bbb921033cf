"""What the registry learns from the monitor: how to check that content is a profile.

The registry sits below the monitor and never imports it, so it finds
:func:`validate_profile` through the ``mlops_engine.validators`` entry point
(declared in pyproject.toml) the first time a profile is registered. Importing this
module registers it too, for a source tree used without installing it.
"""

from __future__ import annotations

from ..registry.validators import register_validator
from .profile_format import Profile


def validate_profile(data: bytes) -> None:
    """Raise ``ValueError`` unless ``data`` is a readable mlops-engine profile.

    Examples
    --------
    >>> validate_profile(b"not a profile")
    Traceback (most recent call last):
    ...
    ValueError: not an mlops-engine profile (not an Arrow IPC file: ...)
    """
    try:
        Profile.from_bytes(data)
    except (KeyError, IndexError) as exc:  # an Arrow file with the profile's tag, damaged inside
        raise ValueError(f"damaged mlops-engine profile: {exc!r}") from None


register_validator("profile", validate_profile)
