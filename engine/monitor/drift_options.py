"""The options of :func:`engine.monitor.drift`: which tests exist for which column kind,
and the checks of ``tests=``, ``thresholds=``, ``correction=`` and the finding policies.

:func:`check_options` is what both the API and the CLI call, so that a bad option
gets the same message from both. The tables of tests per kind are read by the
per-kind tests (:mod:`engine.monitor.drift_rows`).
"""

from __future__ import annotations

import difflib
import math

from .drift_report import FINDING_POLICIES, P_TESTS, check_correction

__all__ = ["CATEGORICAL_TESTS", "EXACT_TESTS", "HIST_TESTS", "KNOWN_TESTS", "NUMERIC_TESTS",
           "SMALL_SAMPLE", "TEXT_TESTS", "applicable", "check_options", "check_tests",
           "check_thresholds"]

NUMERIC_TESTS = ("ks", "wasserstein", "wasserstein_normed", "cvm", "psi", "jensenshannon", "hellinger")
CATEGORICAL_TESTS = ("chi2", "gtest", "linf", "jensenshannon", "psi", "hellinger")
TEXT_TESTS = ("jensenshannon", "jensenshannon_trigrams", "hellinger")
KNOWN_TESTS = frozenset(NUMERIC_TESTS) | frozenset(CATEGORICAL_TESTS) | frozenset(TEXT_TESTS) \
    | {"mmd"}
# the default primary test switches from the exact test to a distance above this many values
SMALL_SAMPLE = 1000
# tests on the binned histograms; tests on every value of the sorted samples
HIST_TESTS = ("psi", "jensenshannon", "hellinger")
EXACT_TESTS = ("ks", "wasserstein", "wasserstein_normed", "cvm")


def check_tests(tests) -> list[str] | None:
    """``tests`` as a list of known test names (a single name is a list of one), or None."""
    if tests is None:
        return None
    if isinstance(tests, str):
        tests = [tests]
    tests = list(tests)
    if not tests:
        raise ValueError("tests must name at least one test, or be None for the defaults")
    for t in tests:
        if t not in KNOWN_TESTS:
            raise ValueError(f"unknown test {t!r}; known tests: {sorted(KNOWN_TESTS)}")
    return tests


def _threshold_value(key: str, v, test: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ValueError(f"thresholds[{key}] must be a finite number >= 0, got {v!r}")
    if test in P_TESTS and v > 1:
        raise ValueError(f"thresholds[{key}] is the significance level of {test}, a p-value "
                         f"test: expected a number in [0, 1], got {v!r}")
    return float(v)


def check_thresholds(thresholds, column_names=None) -> dict | None:
    """``thresholds`` with float values; every key must name a known test (a number) or a
    column (a dict of test -> number). Columns are checked when ``column_names`` is given."""
    if thresholds is None:
        return None
    if not isinstance(thresholds, dict):
        raise TypeError(f"thresholds must be a dict, got {type(thresholds).__name__}")
    out: dict = {}
    for key, val in thresholds.items():
        if isinstance(val, dict):
            if column_names is not None and key not in column_names:
                close = difflib.get_close_matches(str(key), sorted(map(str, column_names)), 3)
                hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
                raise ValueError(f"thresholds key {key!r} names neither a known test nor a "
                                 f"column of the data{hint}")
            out[key] = {}
            for t, v in val.items():
                if t not in KNOWN_TESTS:
                    raise ValueError(f"thresholds[{key!r}]: unknown test {t!r}; known tests: "
                                     f"{sorted(KNOWN_TESTS)}")
                out[key][t] = _threshold_value(f"{key!r}][{t!r}", v, t)
        elif key in KNOWN_TESTS:
            out[key] = _threshold_value(repr(key), val, key)
        else:
            close = difflib.get_close_matches(str(key), sorted(KNOWN_TESTS), 3)
            hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
            raise ValueError(f"thresholds key {key!r} is not a known test ({hint}known tests: "
                             f"{sorted(KNOWN_TESTS)}); a column's thresholds must be a dict of "
                             f"test -> threshold, e.g. {{{key!r}: {{'psi': 0.2}}}}, got {val!r}")
    return out


def check_options(*, tests=None, thresholds=None, correction: str | None = "bh",
                  alpha: float = 0.05, share: float = 0.5, missing: str = "drift",
                  new_columns: str = "report", column_names=None) -> dict:
    """Validate and normalize the options of :func:`engine.monitor.drift` (also the CLI's).

    Parameters
    ----------
    tests, thresholds, correction, alpha, share, missing, new_columns
        As for :func:`engine.monitor.drift`.
    column_names : iterable of str, optional
        The columns of the data: then a ``thresholds`` key that names neither a
        known test nor one of them is an error (without it, only per-test keys
        and the tests inside per-column dicts are checked).

    Returns
    -------
    dict
        ``tests`` (list or None), ``thresholds`` (float values, or None),
        ``correction`` (``"bh"``, ``"bonferroni"`` or None for ``"none"``),
        ``alpha``, ``share``, ``missing``, ``new_columns``: keyword arguments
        ready for :func:`engine.monitor.drift`.

    Raises
    ------
    ValueError, TypeError
        Naming the argument (and the key of ``thresholds``) and what was expected.

    Examples
    --------
    >>> check_options(tests="ks", correction="none")["tests"], check_options(correction="none")["correction"]
    (['ks'], None)
    """
    for nm, v in (("alpha", alpha), ("share", share)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
            raise ValueError(f"{nm} must be a number in (0, 1], got {v!r}")
    for nm, v in (("missing", missing), ("new_columns", new_columns)):
        if v not in FINDING_POLICIES:
            raise ValueError(f"{nm} must be one of {', '.join(map(repr, FINDING_POLICIES))}, "
                             f"got {v!r}")
    names = None if column_names is None else set(column_names)
    return {"tests": check_tests(tests), "thresholds": check_thresholds(thresholds, names),
            "correction": check_correction(correction), "alpha": float(alpha),
            "share": float(share), "missing": missing, "new_columns": new_columns}


def applicable(tests, allowed, default) -> list[str]:
    """The tests to run on a column kind: ``tests`` (the user's) that the kind ``allowed``,
    in the user's order, or the kind's ``default`` when the user named none."""
    if tests is None:
        return list(default)
    return [t for t in tests if t in allowed]
