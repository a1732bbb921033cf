"""The per-request guard: answer only questions that fit the training set.

A :class:`Guard` is built from the training profile of a model's inputs (and,
optionally, the profile of its outputs) and checks one request
(:meth:`Guard.check_row`, a mapping such as a parsed JSON body), a batch
(:meth:`Guard.check`, an Arrow table or anything :func:`engine.monitor.profile`
reads) or predictions (:meth:`Guard.check_output`) against them.

Checks
------
Every violation names one of these checks:

==================== ======================================================= ==========
check                what it means                                           default
==================== ======================================================= ==========
``missing_column``   a column of the training profile is not in the request  reject
``extra_column``     the request has a column training never had             flag
``type``             a value of the wrong type (a string for a numeric       flag
                     column, a bool for a number, a number for text)
``null``             None/NaN where training had no nulls and no NaN         flag
``range``            a number outside the training range widened by the      flag
                     tolerance (``clip`` possible)
``unseen_category``  a category the training profile never counted           reject
``unseen_script``    text holding a Unicode script training never saw        reject
                     (Cyrillic sent to a model trained on Spanish)
``trigram_distance`` text whose character trigrams fit training's badly       flag
                     (another language in the same script)
``language``         text identified as a language not in ``languages``      flag
                     (optional, extra ``langid``; see below)
``output_range``     a prediction outside the output profile's range         flag
                     (``clip`` possible)
``unseen_class``     a predicted class never predicted in the output profile flag
==================== ======================================================= ==========

Policies: ``flag`` (the violation is returned), ``reject`` (:meth:`check_row`
and wrapped functions raise :class:`OutOfDistributionError` carrying every
violation of the request; :meth:`check` marks the rows, and raises only with
``raise_on_reject=True``; :meth:`screen` returns the accepted rows and a
:class:`Rejection` of the others), ``clip`` (numbers only: the value is clipped into the
range, reported with its ``replacement``, and a wrapped function gets the clipped
value). ``policy="flag"`` keeps the three defaults above that reject; a string
policy ``"reject"`` rejects every check; ``"clip"`` clips ranges and keeps the
other defaults; a dict ``{check: policy}`` sets checks one by one. ``overrides``
sets them per column: ``{"age": "clip"}`` or ``{"age": {"range": "flag",
"tolerance": 0.5}}``.

Numeric range
-------------
``[min - t, max + t]`` of the training profile's finite values, with ``t =
tolerance * (max - min)`` (default ``tolerance=0.1``: 10% of the range on each
side; for a constant column ``t = tolerance * max(|min|, 1)``). A column whose
training data held +inf (-inf) has no upper (lower) bound. An output column may
use a quantile range of its profile's sample instead (``output_quantiles``).

Text
----
``unseen_script``: a script (of :data:`engine.monitor.text.SCRIPTS`) counts as
seen when at least one training value held it; ``Common`` (digits, punctuation,
spaces, emoji) is always allowed. ``trigram_distance``: each trigram of the value
(three consecutive code points, hashed into the profile's buckets exactly as the
profile does) scores ``-log((c_b + 0.5) / (N + 0.5 B))``, its surprise under the
training counts ``c`` (additive smoothing, ``N`` trigrams, ``B`` buckets), and the
value's score is the mean over its ``n`` trigrams. The threshold is calibrated
on the training profile itself by leave-one-out: a trigram drawn from training
(bucket ``b`` with probability ``c_b / N``) would, held out, have been scored with
``c_b - 1``; these scores have mean ``mu`` and standard deviation ``sd``, and a
value is flagged when its mean exceeds ``mu + z sd / sqrt(n)``, ``z`` the normal
quantile of ``1 - text_alpha`` (default ``text_alpha=0.01``: about 1% of
in-distribution values flagged). Values with fewer than 3 characters, and values
already rejected for their script, are not scored. On the test fixtures (300
Spanish training sentences, default 4096 buckets) 100 of 100 other Spanish
sentences pass and 99 of 100 English ones are flagged.

``language`` (optional): ``Guard(..., languages=["es"])`` (every text column) or
``languages={"note": ["es"]}`` identifies each value that passed the script and
trigram checks with py3langid (:mod:`engine.monitor.language`, extra ``langid``)
and flags it when its most probable language is not listed and has probability
``min_confidence`` or more (default 0.5). Values with fewer than 3 characters are
not identified. It is a per-row check (about 25 µs a value), opt-in.

Examples
--------
>>> from engine.monitor import profile
>>> g = Guard(profile({"age": [20.0, 40.0, 60.0], "plan": ["free", "pro", "free"]}))
>>> [(v.check, v.value) for v in g.check_row({"age": 99.0, "plan": "free"})]
[('range', '99.0')]
>>> g.check({"age": [30.0, 70.0], "plan": ["pro", "free"]}).column("row").to_pylist()
[1]
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.kernels import guard as _K
from engine.store.arrow_build import numpy_from_array

from . import language as _language
from . import text as _text
from .profile_categorical import as_strings
from .profile_format import Profile
from .profile_inputs import columns_of
from .profile_numeric import NumericColumn
from .profile_text import TextColumn

CHECKS = ("missing_column", "extra_column", "type", "null", "range", "unseen_category",
          "unseen_script", "trigram_distance", "language", "output_range", "unseen_class")
POLICIES = ("flag", "reject", "clip")
#: Checks that reject by default; every other check flags.
DEFAULT_REJECT = frozenset({"unseen_script", "unseen_category", "missing_column"})
DEFAULT_TOLERANCE = 0.1
DEFAULT_TEXT_ALPHA = 0.01
DEFAULT_MIN_CONFIDENCE = 0.5
TRIGRAM_SMOOTHING = 0.5
_CLIPPABLE = frozenset({"range", "output_range"})
_MISSING = object()
_CACHE_LIMIT = 1 << 20  # trigram and character caches of a text column are cleared past this
RESULT_SCHEMA = pa.schema([("row", pa.int64()), ("column", pa.string()), ("check", pa.string()),
                           ("value", pa.string()), ("expected", pa.string()),
                           ("action", pa.string())])


class Violation(NamedTuple):
    """One failed check of one value.

    ``row`` is the row in the batch (0 for :meth:`Guard.check_row`), ``value`` the
    value as a string (None for a null or an absent value), ``expected`` what training
    saw, ``action`` the policy applied (``flag``, ``reject`` or ``clip``) and
    ``replacement`` the clipped value (None unless ``action == "clip"``).
    """

    row: int
    column: str
    check: str
    value: str | None
    expected: str
    action: str
    replacement: float | None = None

    def reason(self) -> str:
        return f"{self.column}: {self.check} ({self.value!r}; expected {self.expected})"


class OutOfDistributionError(ValueError):
    """A request (or batch) a check with the ``reject`` policy refused.

    Attributes
    ----------
    violations : list of Violation
        Every violation found (not only the rejecting ones).
    reasons : list of str
        One line per rejecting violation.
    """

    def __init__(self, violations):
        self.violations = list(violations)
        self.reasons = [v.reason() for v in self.violations if v.action == "reject"]
        shown = "; ".join(self.reasons[:5]) + (f"; ... {len(self.reasons) - 5} more"
                                               if len(self.reasons) > 5 else "")
        super().__init__(f"out of distribution: {shown}")


def _fmt(v) -> str | None:
    if v is None or v is _MISSING:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, float, np.integer, np.floating)):
        return repr(float(v))
    return str(v)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
        v, (bool, np.bool_))


def _category_key(v):
    """``v`` spelled as a profile counts it (Arrow's cast to string), or None if it is no
    scalar a categorical column holds."""
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if f.is_integer() and abs(f) < 1e15:
            return ("-0" if math.copysign(1.0, f) < 0 else "0") if f == 0 else str(int(f))
        return repr(f)
    return None


class Rejection(NamedTuple):
    """The rejected rows of a batch (:meth:`Guard.screen`) and why.

    ``rows``: row numbers in the batch (int64, ascending); ``violations``: every
    violation of those rows (the rejecting ones and any flagged beside them).
    """

    rows: np.ndarray
    violations: list

    def __len__(self) -> int:
        return len(self.rows)

    def reasons(self, row: int) -> list[str]:
        """The reasons of one rejected row, as :meth:`Violation.reason` words them."""
        return [v.reason() for v in self.violations if v.row == row]

    def table(self) -> pa.Table:
        """The violations as an Arrow table (:data:`RESULT_SCHEMA`)."""
        return violations_table(self.violations)


class Screened(NamedTuple):
    """A batch screened by :meth:`Guard.screen`: what may be served, and what may not."""

    accepted: pa.Table
    accepted_rows: np.ndarray
    rejection: Rejection
    violations: pa.Table


class _Policies:
    """The action of every (column, check): ``policy``, then ``overrides``."""

    def __init__(self, policy, overrides):
        if isinstance(policy, str):
            _check_policy(policy, "policy")
            base = {c: ("reject" if c in DEFAULT_REJECT else "flag") for c in CHECKS}
            if policy == "reject":
                base = dict.fromkeys(CHECKS, "reject")
            elif policy == "clip":
                base.update(dict.fromkeys(_CLIPPABLE, "clip"))
        elif isinstance(policy, Mapping):
            base = {c: ("reject" if c in DEFAULT_REJECT else "flag") for c in CHECKS}
            for c, p in policy.items():
                base[_check_check(c, "policy")] = _check_policy(p, f"policy[{c!r}]", c)
        else:
            raise TypeError(f"policy must be 'flag', 'reject', 'clip' or a dict of check to "
                            f"policy, got {type(policy).__name__}")
        self.base = base
        self.columns: dict[str, dict] = {}
        self.tolerance: dict[str, float] = {}
        if overrides is None:
            return
        if not isinstance(overrides, Mapping):
            raise TypeError(f"overrides must be a dict of column to policy or to a dict of "
                            f"check to policy, got {type(overrides).__name__}")
        for col, o in overrides.items():
            if isinstance(o, str):
                _check_policy(o, f"overrides[{col!r}]")
                self.columns[col] = {c: o for c in CHECKS if o != "clip" or c in _CLIPPABLE}
            elif isinstance(o, Mapping):
                d = {}
                for c, p in o.items():
                    if c == "tolerance":
                        self.tolerance[col] = _check_tolerance(p, f"overrides[{col!r}]"
                                                                  "['tolerance']")
                    else:
                        d[_check_check(c, f"overrides[{col!r}]")] = _check_policy(
                            p, f"overrides[{col!r}][{c!r}]", c)
                self.columns[col] = d
            else:
                raise TypeError(f"overrides[{col!r}] must be a policy or a dict of check to "
                                f"policy, got {type(o).__name__}")

    def of(self, column: str, check: str) -> str:
        return self.columns.get(column, {}).get(check, self.base[check])


def _check_policy(p, what: str, check: str | None = None) -> str:
    if p not in POLICIES:
        raise ValueError(f"{what} must be one of {', '.join(POLICIES)}, got {p!r}")
    if p == "clip" and check is not None and check not in _CLIPPABLE:
        raise ValueError(f"{what}: 'clip' applies to numbers only (checks range and "
                         f"output_range), not to {check!r}")
    return p


def _check_check(c, what: str) -> str:
    if c not in CHECKS:
        raise ValueError(f"{what}: unknown check {c!r}; checks are {', '.join(CHECKS)}")
    return c


def _check_tolerance(t, what: str) -> float:
    if not _is_number(t) or not t >= 0 or math.isinf(t):
        raise ValueError(f"{what} must be a finite number >= 0, got {t!r}")
    return float(t)


# ---------------------------------------------------------------------------
# Compiled columns
# ---------------------------------------------------------------------------


class _Numeric:
    """A numeric column's bounds and actions; ``slow`` handles every value the fast
    path (an int or float inside the bounds) does not."""

    kind = "numeric"

    def __init__(self, name, lo, hi, nan_ok, pol: _Policies, output: bool):
        self.name, self.lo, self.hi, self.nan_ok = name, lo, hi, nan_ok
        self.range_check = "output_range" if output else "range"
        self.a_range = pol.of(name, self.range_check)
        self.a_null, self.a_type = pol.of(name, "null"), pol.of(name, "type")
        self.a_missing = pol.of(name, "missing_column")
        self.expected = f"[{lo:.10g}, {hi:.10g}]"  # 212.02, not 212.01999999999998

    def slow(self, v, row: int):
        if v is _MISSING:
            return Violation(row, self.name, "missing_column", None, "present", self.a_missing)
        if v is None:
            return None if self.nan_ok else Violation(row, self.name, "null", None,
                                                      "not null", self.a_null)
        if not _is_number(v):
            return Violation(row, self.name, "type", _fmt(v), "a number", self.a_type)
        f = float(v)
        if f != f:
            return None if self.nan_ok else Violation(row, self.name, "null", "nan",
                                                      "not null", self.a_null)
        if self.lo <= f <= self.hi:
            return None
        rep = min(max(f, self.lo), self.hi) if self.a_range == "clip" else None
        return Violation(row, self.name, self.range_check, repr(f), self.expected,
                         self.a_range, rep)

    def batch(self, col, n, out: list) -> None:
        fam = col.family
        if fam == "null":
            if not self.nan_ok:
                out.extend(Violation(i, self.name, "null", None, "not null", self.a_null)
                           for i in range(n))
            return
        if fam != "numeric":
            _wrong_type(col, self.name, "a number", self.a_type, self.nan_ok, self.a_null, out)
            return
        x = col.float64()
        codes = _K.range_codes(x, self.lo, self.hi, nan_ok=self.nan_ok)
        for i in np.flatnonzero(codes).tolist():
            c = codes[i]
            if c == 3:
                out.append(Violation(i, self.name, "null", None if _is_null(col, i) else "nan",
                                     "not null", self.a_null))
            else:
                f = float(x[i])
                rep = min(max(f, self.lo), self.hi) if self.a_range == "clip" else None
                out.append(Violation(i, self.name, self.range_check, repr(f), self.expected,
                                     self.a_range, rep))


def _is_null(col, i) -> bool:
    return col.arrow is not None and col.arrow.null_count and not col.arrow[i].is_valid


def _wrong_type(col, name, expected, action, null_ok, a_null, out) -> None:
    """Every non-null value of ``col`` is of the wrong type (nulls: the null check)."""
    arr = col.arrow_array()
    valid = np.asarray(pc.is_valid(arr).to_numpy(zero_copy_only=False), dtype=bool)
    try:
        vals = as_strings(arr).to_pylist()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        vals = [None] * len(arr)
    for i in range(len(arr)):
        if valid[i]:
            out.append(Violation(i, name, "type", vals[i], expected, action))
        elif not null_ok:
            out.append(Violation(i, name, "null", None, "not null", a_null))


class _Categorical:
    kind = "categorical"

    def __init__(self, name, seen, null_ok, pol: _Policies, output: bool):
        self.name, self.seen, self.null_ok = name, frozenset(seen), null_ok
        self.cat_check = "unseen_class" if output else "unseen_category"
        self.a_cat = pol.of(name, self.cat_check)
        self.a_null, self.a_type = pol.of(name, "null"), pol.of(name, "type")
        self.a_missing = pol.of(name, "missing_column")
        self.expected = f"one of {len(self.seen)} {'classes' if output else 'categories'} " \
                        "seen in training"

    def slow(self, v, row: int):
        if v is _MISSING:
            return Violation(row, self.name, "missing_column", None, "present", self.a_missing)
        if v is None or (isinstance(v, (float, np.floating)) and v != v):
            return None if self.null_ok else Violation(row, self.name, "null", _fmt(v) and
                                                       "nan", "not null", self.a_null)
        key = _category_key(v)
        if key is None:
            return Violation(row, self.name, "type", _fmt(v), "a category (a string, "
                             "number or bool)", self.a_type)
        if key in self.seen:
            return None
        return Violation(row, self.name, self.cat_check, key, self.expected, self.a_cat)

    def batch(self, col, n, out: list) -> None:
        arr = col.arrow_array()
        try:
            s = as_strings(arr).combine_chunks() if len(arr) else pa.array([], pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            _wrong_type(col, self.name, "a category (a string, number or bool)", self.a_type,
                        self.null_ok, self.a_null, out)
            return
        nan = None
        if col.family == "numeric":  # NaN is a null to the profile, but casts to "nan"
            x = col.float64()
            nan = np.isnan(x) & np.asarray(pc.is_valid(arr).to_numpy(zero_copy_only=False))
            if nan.any():
                s = pc.if_else(pa.array(nan), pa.scalar(None, s.type), s)
        enc = s.dictionary_encode()
        dictionary = enc.dictionary.to_pylist()
        seen = np.array([d in self.seen for d in dictionary], dtype=bool)
        idx = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        codes = _K.category_codes(idx, seen, null_ok=self.null_ok)
        for i in np.flatnonzero(codes).tolist():
            if codes[i] == 3:
                out.append(Violation(i, self.name, "null", "nan" if nan is not None and nan[i]
                                     else None, "not null", self.a_null))
            else:
                out.append(Violation(i, self.name, self.cat_check, dictionary[idx[i]],
                                     self.expected, self.a_cat))


class _Text:
    kind = "text"

    def __init__(self, name, tc: TextColumn, pol: _Policies, alpha: float):
        self.name, self.null_ok = name, tc.nulls > 0
        self.a_null, self.a_type = pol.of(name, "null"), pol.of(name, "type")
        self.a_missing = pol.of(name, "missing_column")
        self.a_script = pol.of(name, "unseen_script")
        self.a_tri = pol.of(name, "trigram_distance")
        sv = tc.script_values
        self.allowed = np.array([bool(sv.get(s, 0)) or s == "Common" for s in _text.SCRIPTS])
        self.script_expected = "scripts seen in training: " + ", ".join(
            s for s, ok in zip(_text.SCRIPTS, self.allowed) if ok)
        c = np.asarray(tc.trigrams, dtype=np.float64)
        self.buckets = len(c)
        total = float(c.sum())
        a = TRIGRAM_SMOOTHING
        self.scores = -np.log((c + a) / (total + a * self.buckets))
        self.score_list = self.scores.tolist()
        if total >= 2:
            loo = -np.log((np.maximum(c - 1, 0) + a) / (total - 1 + a * self.buckets))
            w = c / total
            self.mu = float(w @ loo)
            self.sd = math.sqrt(max(float(w @ (loo * loo)) - self.mu ** 2, 0.0))
        else:  # no trigrams in training: nothing to compare with
            self.mu, self.sd = math.inf, 0.0
        self.z = statistics.NormalDist().inv_cdf(1.0 - alpha)
        self._chars: dict = {}
        self._tri: dict = {}
        self._char_table = None
        self.langs: frozenset | None = None
        self.min_confidence = DEFAULT_MIN_CONFIDENCE
        self.a_lang = pol.of(name, "language")

    def threshold(self, n: int) -> float:
        return self.mu + self.z * self.sd / math.sqrt(n)

    def _score_new(self, t: str) -> float:
        if len(self._tri) >= _CACHE_LIMIT:
            self._tri.clear()
        s = self._tri[t] = self.score_list[trigram_bucket(t, self.buckets)]
        return s

    def _char_ok(self, ch: str) -> bool:
        if len(self._chars) >= _CACHE_LIMIT:
            self._chars.clear()
        ok = self._chars[ch] = bool(self.allowed[_text.script_of([ord(ch)])[0]])
        return ok

    def slow(self, v, row: int):
        if v is _MISSING:
            return Violation(row, self.name, "missing_column", None, "present", self.a_missing)
        if v is None:
            return None if self.null_ok else Violation(row, self.name, "null", None,
                                                      "not null", self.a_null)
        if not isinstance(v, str):
            return Violation(row, self.name, "type", _fmt(v), "a string", self.a_type)
        chars = self._chars
        for ch in set(v):
            ok = chars.get(ch)
            if ok is None:
                ok = self._char_ok(ch)
            if not ok:
                return Violation(row, self.name, "unseen_script", v, self.script_expected,
                                 self.a_script)
        n = len(v) - 2
        if n < 1:
            return None
        tri = self._tri
        total = 0.0
        for i in range(n):
            t = v[i:i + 3]
            s = tri.get(t)
            if s is None:
                s = self._score_new(t)
            total += s
        score = total / n
        thr = self.threshold(n)
        if score <= thr:
            return None if self.langs is None else self.language(v, row)
        return Violation(row, self.name, "trigram_distance", v,
                         f"trigram score <= {thr:.4f} (got {score:.4f})", self.a_tri)

    def language(self, v: str, row: int):
        """The ``language`` violation of text ``v``, or None (see the module docstring)."""
        lang, p = _language.identify(v)
        if lang in self.langs or p < self.min_confidence:
            return None
        return Violation(row, self.name, "language", v,
                         f"language in {', '.join(sorted(self.langs))} "
                         f"(identified {lang!r}, p={p:.2f})", self.a_lang)

    def batch(self, col, n, out: list) -> None:
        if col.family == "null":
            if not self.null_ok:
                out.extend(Violation(i, self.name, "null", None, "not null", self.a_null)
                           for i in range(n))
            return
        if col.family != "string":
            _wrong_type(col, self.name, "a string", self.a_type, self.null_ok, self.a_null, out)
            return
        arr = as_strings(col.arrow_array())
        chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
        base = 0
        for c in chunks:
            if not (pa.types.is_string(c.type) or pa.types.is_large_string(c.type)):
                c = c.cast(pa.large_string())
            self._batch_chunk(c, base, out)
            base += len(c)

    def _batch_chunk(self, c, base: int, out: list) -> None:
        """Violations of one string chunk whose first row is ``base``: one kernel pass
        (``guard_text``) over its UTF-8 bytes for scripts and trigram scores."""
        if not len(c):
            return
        valid = (np.ones(len(c), dtype=bool) if not c.null_count else
                 numpy_from_array(c.is_valid(), np.bool_))
        if not self.null_ok and c.null_count:
            out.extend(Violation(base + int(i), self.name, "null", None, "not null", self.a_null)
                       for i in np.flatnonzero(~valid))
        offsets, data = _text._offsets_and_data(c)
        unseen, sums, ntri = _K.text_scores(data, offsets, self.char_ok(), self.scores)
        bad = valid & (unseen != 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            score = sums / ntri
            thr = self.mu + self.z * self.sd / np.sqrt(ntri)
        far = valid & (ntri > 0) & ~bad & (score > thr)
        lang = {}
        if self.langs is not None:  # per row, opt-in: the values that passed both checks
            for j in np.flatnonzero(valid & (ntri > 0) & ~bad & ~far).tolist():
                w = self.language(c[j].as_py(), base + j)
                if w is not None:
                    lang[j] = w
        for j in sorted(np.flatnonzero(bad | far).tolist() + list(lang)):
            if j in lang:
                out.append(lang[j])
                continue
            v = c[j].as_py()
            if bad[j]:
                out.append(Violation(base + j, self.name, "unseen_script", v,
                                     self.script_expected, self.a_script))
            else:
                out.append(Violation(base + j, self.name, "trigram_distance", v,
                                     f"trigram score <= {thr[j]:.4f} (got {score[j]:.4f})",
                                     self.a_tri))

    def char_ok(self) -> np.ndarray:
        """Whether each code point's script was seen in training (built on first use)."""
        if self._char_table is None:
            self._char_table = self.allowed[_text.script_table()]
        return self._char_table


_M64 = (1 << 64) - 1


def trigram_bucket(t: str, buckets: int) -> int:
    """The bucket of trigram ``t`` (three characters) as profiles hash it
    (:func:`engine.monitor.text.trigram_hash`), in Python integers for one trigram.

    Examples
    --------
    >>> import numpy as np
    >>> h = _text.trigram_hash(np.array([ord("h")]), np.array([ord("o")]), np.array([ord("l")]))
    >>> trigram_bucket("hol", 4096) == int(h[0]) % 4096
    True
    """
    z = ((ord(t[0]) << 42 | ord(t[1]) << 21 | ord(t[2])) + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return (z ^ (z >> 31)) % buckets


class _Skip:
    """An invalid column of the profile: only its presence is checked."""

    kind = "invalid"

    def __init__(self, name, pol):
        self.name, self.a_missing = name, pol.of(name, "missing_column")

    def slow(self, v, row):
        if v is _MISSING:
            return Violation(row, self.name, "missing_column", None, "present", self.a_missing)
        return None

    def batch(self, col, n, out):
        return None


def _compile(prof: Profile, pol: _Policies, tolerance, quantiles, alpha, output: bool):
    cols = {}
    for name, c in prof.columns.items():
        if c.kind == "numeric":
            t = pol.tolerance.get(name, tolerance)
            if quantiles is not None and isinstance(c, NumericColumn) and len(c.sample):
                lo, hi = (float(q) for q in np.quantile(c.sample, quantiles))
            else:
                lo, hi = float(c.min), float(c.max)
            if math.isnan(lo):  # no finite value in training: no range to hold to
                lo, hi = -math.inf, math.inf
            width = hi - lo if hi > lo else max(abs(lo), 1.0)
            lo, hi = lo - t * width, hi + t * width
            if c.neginf:
                lo = -math.inf
            if c.posinf:
                hi = math.inf
            cols[name] = _Numeric(name, lo, hi, (c.nulls + c.nans) > 0, pol, output)
        elif c.kind == "categorical":
            cols[name] = _Categorical(name, c.counts, c.nulls > 0, pol, output)
        elif c.kind == "text":
            cols[name] = _Text(name, c, pol, alpha)
        else:
            cols[name] = _Skip(name, pol)
    return cols


# ---------------------------------------------------------------------------
# The guard
# ---------------------------------------------------------------------------


class Guard:
    """Per-request and per-batch checks of inputs and outputs against training profiles.

    Parameters
    ----------
    input_profile : Profile
        The profile of the training inputs (:func:`engine.monitor.profile`).
    output_profile : Profile, optional
        The profile of the model's predictions on its training or validation data
        (or, when no predictions were profiled, of the training targets). Needed
        by :meth:`check_output`.
    policy : str or dict
        ``"flag"`` (default: the production defaults, reject for an unseen script,
        an unseen category and a missing column, flag for the rest), ``"reject"``,
        ``"clip"`` or ``{check: policy}`` (see the module docstring).
    tolerance : float
        Numeric ranges are widened by ``tolerance * (max - min)`` on each side
        (default 0.1).
    overrides : dict, optional
        Per column: a policy, or ``{check: policy, "tolerance": t}``.
    text_alpha : float
        Target share of in-distribution text values flagged by the trigram check
        (default 0.01).
    output_quantiles : (float, float), optional
        Hold numeric outputs to this quantile range of the output profile's sample
        (widened by the tolerance) instead of its min and max.
    languages : list or dict, optional
        ISO 639-1 codes the text columns may be written in (a list for every text
        column, or ``{column: list}``): adds the ``language`` check (py3langid,
        extra ``langid``).
    min_confidence : float
        A value is flagged for its language only when the identified language has
        at least this probability (default 0.5).

    Examples
    --------
    >>> from engine.monitor import profile
    >>> g = Guard(profile({"x": [1.0, 2.0]}), profile({"y": [40.0, 200.0]}))
    >>> g.check_output([180.0, 2000.0]).column("row").to_pylist()
    [1]
    """

    def __init__(self, input_profile, output_profile=None, policy="flag", *,
                 tolerance: float = DEFAULT_TOLERANCE, overrides=None,
                 text_alpha: float = DEFAULT_TEXT_ALPHA, output_quantiles=None,
                 languages=None, min_confidence: float = DEFAULT_MIN_CONFIDENCE):
        if not isinstance(input_profile, Profile):
            raise TypeError(f"input_profile must be a Profile, got {type(input_profile).__name__}")
        if output_profile is not None and not isinstance(output_profile, Profile):
            raise TypeError(f"output_profile must be a Profile or None, got "
                            f"{type(output_profile).__name__}")
        tolerance = _check_tolerance(tolerance, "tolerance")
        if not _is_number(text_alpha) or not 0 < text_alpha < 1:
            raise ValueError(f"text_alpha must be a number in (0, 1), got {text_alpha!r}")
        if output_quantiles is not None:
            q = tuple(output_quantiles)
            if len(q) != 2 or not all(_is_number(x) for x in q) or not 0 <= q[0] < q[1] <= 1:
                raise ValueError(f"output_quantiles must be (low, high) with 0 <= low < high "
                                 f"<= 1, got {output_quantiles!r}")
            output_quantiles = q
        self.input_profile, self.output_profile = input_profile, output_profile
        self.tolerance = tolerance
        self._pol = _Policies(policy, overrides)
        self._cols = _compile(input_profile, self._pol, tolerance, None, text_alpha, False)
        if languages is not None:
            if not _is_number(min_confidence) or not 0 <= min_confidence <= 1:
                raise ValueError(f"min_confidence must be a number in [0, 1], got "
                                 f"{min_confidence!r}")
            texts = [n for n, c in self._cols.items() if c.kind == "text"]
            for name, codes in _language.allowed_languages(languages, texts).items():
                self._cols[name].langs = codes
                self._cols[name].min_confidence = float(min_confidence)
        self.languages = {n: sorted(c.langs) for n, c in self._cols.items()
                          if c.kind == "text" and c.langs is not None}
        self._fast = tuple((c.name, c.lo, c.hi, c) for c in self._cols.values()
                           if c.kind == "numeric")
        self._others = tuple(c for c in self._cols.values() if c.kind != "numeric")
        self._n_cols = len(self._cols)
        self._a_extra = self._pol.base["extra_column"]
        self._out = None if output_profile is None else _compile(
            output_profile, self._pol, tolerance, output_quantiles, text_alpha, True)

    def __repr__(self) -> str:
        kinds = ", ".join(f"{n}: {c.kind}" for n, c in self._cols.items())
        out = "none" if self._out is None else ", ".join(self._out)
        return f"Guard(inputs={{{kinds}}}, outputs={out})"

    def action(self, column: str, check: str) -> str:
        """The policy applied to ``check`` of ``column``."""
        return self._pol.of(column, _check_check(check, "check"))

    # ------------------------------------------------------------------ one request
    def check_row(self, row: Mapping, *, raise_on_reject: bool = True) -> list:
        """The violations of one request given as a mapping of column to value.

        The fast path: a plain loop over precompiled columns, no Arrow, no NumPy.
        Raises :class:`OutOfDistributionError` when a violation's policy is
        ``reject`` (unless ``raise_on_reject=False``); returns the list of
        violations otherwise (empty when the request fits training).
        """
        get = row.get
        viol = None
        found = 0
        for name, lo, hi, col in self._fast:
            v = get(name, _MISSING)
            t = type(v)
            if (t is float or t is int) and lo <= v <= hi:
                found += 1
                continue
            if v is not _MISSING:
                found += 1
            bad = col.slow(v, 0)
            if bad is not None:
                if viol is None:
                    viol = []
                viol.append(bad)
        for col in self._others:
            v = get(col.name, _MISSING)
            if v is not _MISSING:
                found += 1
            bad = col.slow(v, 0)
            if bad is not None:
                if viol is None:
                    viol = []
                viol.append(bad)
        if found != len(row):
            if viol is None:
                viol = []
            cols = self._cols
            viol.extend(Violation(0, str(k), "extra_column", _fmt(v), "absent", self._a_extra)
                        for k, v in row.items() if k not in cols)
        if viol is None:
            return []
        if raise_on_reject and any(v.action == "reject" for v in viol):
            raise OutOfDistributionError(viol)
        return viol

    # ------------------------------------------------------------------ batches
    def check(self, batch, *, raise_on_reject: bool = False) -> pa.Table:
        """The violations of every row of ``batch``, as an Arrow table.

        ``batch`` is a ``pyarrow.Table`` or ``RecordBatch``, a pandas DataFrame, a
        mapping of column to values, a 2-D array (columns ``"0"``, ``"1"``, ...), or a
        file or table version :func:`engine.monitor.load_input` reads. The table has
        the columns ``row``, ``column``, ``check``, ``value``, ``expected``,
        ``action`` (:data:`RESULT_SCHEMA`), ordered by row; row ``i`` holds the same
        violations as ``check_row`` of that row. With ``raise_on_reject=True`` a
        rejecting violation raises :class:`OutOfDistributionError`.
        """
        viol = self._batch_violations(batch)
        if raise_on_reject and any(v.action == "reject" for v in viol):
            raise OutOfDistributionError(viol)
        return violations_table(viol)

    def screen(self, batch) -> Screened:
        """``batch`` split into the rows that may be served and a :class:`Rejection` of the rest.

        A row is rejected when one of its violations has the ``reject`` policy. The
        accepted rows come back as an Arrow table (clipped values written in), with
        their row numbers in ``batch``; nothing is raised.

        Examples
        --------
        >>> from engine.monitor import profile
        >>> g = Guard(profile({"plan": ["free", "pro"]}))
        >>> s = g.screen({"plan": ["pro", "gold", "free"]})
        >>> s.accepted_rows.tolist(), s.rejection.rows.tolist()
        ([0, 2], [1])
        >>> s.rejection.reasons(1)
        ["plan: unseen_category ('gold'; expected one of 2 categories seen in training)"]
        """
        viol = self._batch_violations(batch)
        cols, n = _columns(batch)
        rejected = np.zeros(n, dtype=bool)
        rows = [v.row for v in viol if v.action == "reject"]
        rejected[rows] = True
        keep = np.flatnonzero(~rejected)
        table = _clip_batch(batch, viol, force_table=True)
        accepted = table if not len(rows) else table.take(pa.array(keep))
        return Screened(accepted, keep, Rejection(np.flatnonzero(rejected),
                                                  [v for v in viol if rejected[v.row]]),
                        violations_table(viol))

    def _batch_violations(self, batch) -> list:
        cols, n = _columns(batch)
        by_name = {c.name: c for c in cols}
        viol: list = []
        for name, spec in self._cols.items():
            col = by_name.get(name)
            if col is None:
                viol.extend(Violation(i, name, "missing_column", None, "present",
                                      spec.a_missing) for i in range(n))
            else:
                spec.batch(col, n, viol)
        for c in cols:
            if c.name not in self._cols:
                viol.extend(Violation(i, c.name, "extra_column", None, "absent", self._a_extra)
                            for i in range(n))
        viol.sort(key=lambda v: v.row)
        return viol

    # ------------------------------------------------------------------ outputs
    def _output_specs(self):
        if self._out is None:
            raise ValueError("this guard has no output profile: build it with "
                             "Guard(input_profile, output_profile=...) or log one with "
                             "Registry.log_profile(p, of=MODEL_VERSION, role='output') "
                             "before calling check_output")
        return self._out

    def check_output(self, preds, *, raise_on_reject: bool = False) -> pa.Table:
        """Predictions outside what training produced, as a table like :meth:`check`'s.

        ``preds`` is a scalar, a 1-D array, list, Arrow or pandas column (for an output
        profile of one column), or a table or mapping with the output profile's columns.
        A guard without an output profile raises ValueError.
        """
        specs = self._output_specs()
        viol: list = []
        cols, n = _columns(self._as_output_batch(preds, specs))
        by_name = {c.name: c for c in cols}
        for name, spec in specs.items():
            col = by_name.get(name)
            if col is None:
                viol.extend(Violation(i, name, "missing_column", None, "present",
                                      spec.a_missing) for i in range(n))
            else:
                spec.batch(col, n, viol)
        viol.sort(key=lambda v: v.row)
        if raise_on_reject and any(v.action == "reject" for v in viol):
            raise OutOfDistributionError(viol)
        return violations_table(viol)

    def check_output_row(self, pred, *, raise_on_reject: bool = True) -> list:
        """The violations of one prediction: a scalar (one output column) or a mapping."""
        specs = self._output_specs()
        if not isinstance(pred, Mapping):
            if len(specs) != 1:
                raise ValueError(f"the output profile has {len(specs)} columns "
                                 f"({', '.join(specs)}); give the prediction as a mapping")
            pred = {next(iter(specs)): pred}
        viol = []
        for name, spec in specs.items():
            v = pred.get(name, _MISSING)
            if isinstance(v, np.ndarray) and v.ndim == 0:
                v = v.item()
            bad = spec.slow(v, 0)
            if bad is not None:
                viol.append(bad)
        if raise_on_reject and any(v.action == "reject" for v in viol):
            raise OutOfDistributionError(viol)
        return viol

    @staticmethod
    def _as_output_batch(preds, specs):
        if isinstance(preds, (pa.Table, pa.RecordBatch, Mapping)) or _is_frame(preds):
            return preds
        if isinstance(preds, np.ndarray) and preds.ndim == 2 and preds.shape[1] == len(specs):
            return {name: preds[:, j] for j, name in enumerate(specs)}
        if len(specs) != 1:
            raise ValueError(f"the output profile has {len(specs)} columns "
                             f"({', '.join(specs)}); give predictions as a table or mapping")
        if np.isscalar(preds) or preds is None:
            preds = [preds]
        elif isinstance(preds, np.ndarray) and preds.ndim == 2 and preds.shape[1] == 1:
            preds = preds[:, 0]
        return {next(iter(specs)): preds}

    # ------------------------------------------------------------------ wrapping
    def wrap(self, fn, *, on_violation=None):
        """``fn`` with its input checked before and its output after.

        The wrapped function takes one request as a mapping (checked with
        :meth:`check_row`; clipped values are passed on clipped) or a batch
        (:meth:`check`; clipped numeric columns replaced). A rejecting violation
        raises :class:`OutOfDistributionError` before ``fn`` runs (input) or after
        (output). Flagged and clipped violations go to ``on_violation(list)`` when
        given. Outputs are checked only when the guard has an output profile.
        """
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")

        def guarded(x, *args, **kwargs):
            if isinstance(x, Mapping) and _is_request(x):
                viol = self.check_row(x)
                clips = {v.column: v.replacement for v in viol if v.action == "clip"}
                if clips:
                    x = {**x, **clips}
            else:
                viol = self._batch_violations(x)
                if any(v.action == "reject" for v in viol):
                    raise OutOfDistributionError(viol)
                x = _clip_batch(x, viol)
            y = fn(x, *args, **kwargs)
            if self._out is not None:
                if np.isscalar(y) or isinstance(y, Mapping) or (
                        isinstance(y, np.ndarray) and y.ndim == 0):
                    out = self.check_output_row(y)
                    clips = [v for v in out if v.action == "clip"]
                    if clips and not isinstance(y, Mapping):
                        y = clips[0].replacement
                else:
                    out = _table_violations(self.check_output(y, raise_on_reject=True))
                viol = list(viol) + list(out)
            if viol and on_violation is not None:
                on_violation(viol)
            return y

        guarded.__wrapped__ = fn
        guarded.__name__ = getattr(fn, "__name__", "guarded")
        guarded.__doc__ = getattr(fn, "__doc__", None)
        return guarded

    # ------------------------------------------------------------------ registry
    @classmethod
    def from_registry(cls, ref, registry=None, policy="flag", **kwargs) -> Guard:
        """The guard of the model version ``ref`` names (``"glucose@production"``).

        Reads the input profile (required) and output profile (optional) that
        :meth:`engine.registry.Registry.log_profile` logged for that version.
        ``registry`` is a Registry, a store or its path (default: the default
        store). Other keywords go to :class:`Guard`.
        """
        from engine.registry import Registry, RegistryError

        from .registry_hooks import load_profile

        own = not isinstance(registry, Registry)
        reg = Registry(registry, create=False) if own else registry
        try:
            mv = reg.get(ref)
            found = {}
            for role in ("input", "output"):
                pv = _profile_version(reg, mv, role)
                found[role] = None if pv is None else load_profile(reg, pv)
            if found["input"] is None:
                raise RegistryError(f"no input profile was logged for {mv.ref}: log one with "
                                    f"reg.log_profile(profile, of={mv.ref!r}, role='input')")
        finally:
            if own:
                reg.close()
        return cls(found["input"], found["output"], policy, **kwargs)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _profile_version(reg, mv, role: str):
    """The newest profile version logged for model version ``mv`` in ``role``, or None.

    Registry.log_profile names it ``<model>.<role>-profile`` and tags it
    ``profile_of=<model>:vN``, ``profile_role=<role>``.
    """
    name = f"{mv.name}.{role}-profile"
    if reg.kind_of(name) != "profile":
        return None
    mine = [v for v in reg.versions(name)
            if v.tags.get("profile_of") == mv.ref and v.tags.get("profile_role") == role]
    return mine[-1] if mine else None


def _is_frame(x) -> bool:
    return type(x).__name__ == "DataFrame" and hasattr(x, "columns")


def _is_request(x: Mapping) -> bool:
    """A mapping of scalars (one request), not of columns."""
    return not any(isinstance(v, (list, tuple, np.ndarray, pa.Array, pa.ChunkedArray))
                   or type(v).__name__ == "Series" for v in x.values())


def _columns(batch):
    if isinstance(batch, (str, os.PathLike)):
        from .inputs import load_input

        batch = load_input(batch)
        if isinstance(batch, Profile):
            raise ValueError("the guard checks data, not a profile: give a table, a data "
                             "file or a table version")
    return columns_of(batch, None)


def violations_table(viol) -> pa.Table:
    """Violations as an Arrow table of :data:`RESULT_SCHEMA`."""
    return pa.table({"row": pa.array([v.row for v in viol], pa.int64()),
                     "column": pa.array([v.column for v in viol], pa.string()),
                     "check": pa.array([v.check for v in viol], pa.string()),
                     "value": pa.array([v.value for v in viol], pa.string()),
                     "expected": pa.array([v.expected for v in viol], pa.string()),
                     "action": pa.array([v.action for v in viol], pa.string())},
                    schema=RESULT_SCHEMA)


def _table_violations(t: pa.Table) -> list:
    return [Violation(r["row"], r["column"], r["check"], r["value"], r["expected"], r["action"])
            for r in t.to_pylist()]


def _clip_batch(batch, viol, force_table: bool = False):
    """``batch`` with the clipped values of ``viol`` written in (an Arrow table then;
    always a table with ``force_table``)."""
    clips: dict = {}
    for v in viol:
        if v.action == "clip":
            clips.setdefault(v.column, {})[v.row] = v.replacement
    if not clips and not force_table:
        return batch
    cols, _ = _columns(batch)
    out = {}
    for c in cols:
        if c.name in clips:
            x = c.float64().copy()
            for i, r in clips[c.name].items():
                x[i] = r
            out[c.name] = pa.array(x)
        else:
            out[c.name] = c.arrow_array()
    return pa.table(out)


__all__ = ["CHECKS", "DEFAULT_REJECT", "DEFAULT_TOLERANCE", "RESULT_SCHEMA", "Guard",
           "OutOfDistributionError", "Rejection", "Screened", "Violation", "violations_table"]
