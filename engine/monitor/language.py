"""Optional language identification for the guard's ``language`` check (extra ``langid``).

The guard's own text checks need nothing but the training profile: scripts never
seen in training, and character-trigram distance from training's trigram counts.
A named language adds a third check: with ``Guard(..., languages={"note": ["es"]})``
every text value of ``note`` that passed the other two is identified by
`py3langid <https://pypi.org/project/py3langid/>`_ (a maintained fork of Lui &
Baldwin's langid.py, BSD-3-Clause, its naive Bayes model of 97 languages shipped
inside the wheel), and a value whose most probable language is not in the list,
with a probability of at least ``min_confidence``, is a ``language`` violation.

Install it with ``pip install 'mlops-engine[langid]'`` (``make test`` does). It is
loaded on first use, once per process; without it, asking for languages raises
:class:`ImportError` saying what to install. Identification costs about 25 µs
per 70-character value on one core, so it is a per-row check, opt-in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

INSTALL_HINT = "pip install 'mlops-engine[langid]'"


@lru_cache(maxsize=1)
def identifier():
    """The py3langid identifier with normalized probabilities (loaded once)."""
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError as e:
        raise ImportError(f"language checks need py3langid: {INSTALL_HINT}") from e
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def known_languages() -> tuple[str, ...]:
    """The ISO 639-1 codes the identifier knows (``'es'``, ``'en'``, ``'ru'``, ...)."""
    return tuple(sorted(set(identifier().nb_classes)))


def identify(text: str) -> tuple[str, float]:
    """``(language, probability)`` of ``text``: the most probable ISO 639-1 code.

    Examples
    --------
    >>> identify("¿Dónde está la estación de tren más cercana?")[0]
    'es'
    """
    lang, p = identifier().classify(text)
    return str(lang), float(p)


def allowed_languages(languages, text_columns: Iterable[str]) -> dict[str, frozenset]:
    """``languages`` (a list for every text column, or a mapping of column to list)
    checked and spread over ``text_columns``: ``{column: frozenset of codes}``."""
    text_columns = list(text_columns)
    if isinstance(languages, str):
        raise TypeError(f"languages must be a list of language codes or a dict of column to "
                        f"list, not the string {languages!r} (write [{languages!r}])")
    if isinstance(languages, Mapping):
        per = dict(languages)
        unknown = sorted(set(per) - set(text_columns))
        if unknown:
            raise ValueError(f"languages names {unknown}, which are not text columns of the "
                             f"input profile (text columns: {text_columns})")
    else:
        per = dict.fromkeys(text_columns, languages)
    known = set(known_languages())
    out = {}
    for col, langs in per.items():
        if isinstance(langs, str) or not isinstance(langs, Iterable):
            raise TypeError(f"languages[{col!r}] must be a list of language codes, got {langs!r}")
        codes = frozenset(langs)
        bad = sorted(str(c) for c in codes - known)
        if bad or not codes:
            raise ValueError(f"languages[{col!r}] must be a non-empty list of ISO 639-1 codes "
                             f"py3langid knows, got unknown {bad or 'nothing'}")
        out[col] = codes
    return out


__all__ = ["INSTALL_HINT", "allowed_languages", "identifier", "identify", "known_languages"]
