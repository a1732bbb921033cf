"""Monitoring: reference profiles, drift tests and reports, the per-request guard and the
streaming monitor.

Examples
--------
>>> import numpy as np
>>> from engine.monitor import drift
>>> rng = np.random.default_rng(0)
>>> rep = drift({"x": rng.normal(size=300)}, {"x": rng.normal(size=300) + 2})
>>> rep.drifted_columns
['x']
"""

from .drift import DriftReport, adjust_pvalues, check_options, drift
from .inputs import load_input
from .profile import Profile, profile

__all__ = ["DriftReport", "Guard", "Monitor", "OutOfDistributionError", "Profile", "Rejection",
           "RetrainSignal", "Screened", "Violation", "adjust_pvalues", "check_options", "drift",
           "load_input", "load_profile", "profile"]

_GUARD_NAMES = ("Guard", "OutOfDistributionError", "Rejection", "Screened", "Violation")


def __getattr__(name: str):
    # load_profile reads the registry: imported on first use, so that `import engine.monitor`
    # (drift of in-memory data, say) does not import the registry and the store.
    if name == "load_profile":
        from .registry_hooks import load_profile

        return load_profile
    if name in _GUARD_NAMES:
        from . import guard

        return getattr(guard, name)
    if name == "Monitor":
        from .stream import Monitor

        return Monitor
    if name == "RetrainSignal":
        from .signal import RetrainSignal

        return RetrainSignal
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
