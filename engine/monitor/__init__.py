"""Monitoring: reference profiles, drift tests and reports.

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

__all__ = ["DriftReport", "Profile", "adjust_pvalues", "check_options", "drift", "load_input",
           "profile"]
