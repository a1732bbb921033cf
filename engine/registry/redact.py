"""What a run records of its command line: secrets redacted, or nothing at all.

Commits are immutable, so a secret written into one stays in the store forever.
``Registry.start_run`` records ``sys.argv`` through :func:`argv_for_record`:

* the value of an option whose name has a secret word in it (``--hf-token=...``,
  ``--password X``, ``--api-key``, ``-secret``; words: :data:`SECRET_WORDS`, matched
  against the option's name split at ``-`` and ``_``, and as a suffix), in both forms
  ``--name=value`` and ``--name value``;
* the value of ``NAME=value`` arguments whose NAME has such a word (``HF_TOKEN=...``);
* the password of a URL with credentials (``postgres://user:pw@host`` ->
  ``postgres://user:***@host``);
* any argument that looks like a well-known token (``hf_...``, ``ghp_...``, ``github_pat_``,
  ``sk-...``, ``xoxb-...``, AWS access key ids ``AKIA...``)

become :data:`REDACTED`. ``$MLOPS_REDACT`` adds words (comma-separated) to the list;
``$MLOPS_RECORD_ARGV=0`` records no command line at all (``argv`` is then ``None``).

Examples
--------
>>> redact_argv(["train.py", "--hf-token=hf_abcdefghijklmnopqrstuvwx", "--lr", "0.1",
...              "--password", "hunter2", "--db", "postgres://ann:pw@db:5432/x"])
['train.py', '--hf-token=***', '--lr', '0.1', '--password', '***', '--db', 'postgres://ann:***@db:5432/x']
"""

from __future__ import annotations

import os
import re
import sys

#: What a redacted value becomes.
REDACTED = "***"
#: Words that make an option or variable name secret (see the module docstring).
SECRET_WORDS = ("token", "key", "secret", "password", "passwd", "pwd", "apikey", "credential",
                "credentials", "auth", "cookie", "session")
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):"
                              r"(?P<pw>[^@/\s]+)@")
_TOKEN_LIKE = re.compile(r"^(hf_[A-Za-z0-9]{20,}|ghp_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|"
                         r"sk-[A-Za-z0-9_-]{20,}|xox[abpors]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16})$")


def _words() -> tuple[str, ...]:
    extra = os.environ.get("MLOPS_REDACT", "")
    return SECRET_WORDS + tuple(w.strip().lower() for w in extra.split(",") if w.strip())


def is_secret_name(name: str) -> bool:
    """Whether an option or variable name (``--hf-token``, ``DB_PASSWORD``) names a secret.

    Examples
    --------
    >>> is_secret_name("--hf-token"), is_secret_name("DB_PASSWORD"), is_secret_name("--lr")
    (True, True, False)
    """
    n = name.lstrip("-").lower()
    words = _words()
    parts = [p for p in re.split(r"[-_.]", n) if p]
    return any(p in words for p in parts) or any(n.endswith(w) for w in words)


def _scrub(value: str) -> str:
    if _TOKEN_LIKE.match(value):
        return REDACTED
    return _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", value)


def redact_argv(argv) -> list[str]:
    """``argv`` with secret values replaced by :data:`REDACTED` (see the module docstring)."""
    out: list[str] = []
    hide_next = False
    for arg in map(str, argv):
        if hide_next:  # the value of a secret option, unless the next long option follows
            hide_next = False
            if not arg.startswith("--"):
                out.append(REDACTED)
                continue
        if arg.startswith("-") and "=" in arg:
            name, _, value = arg.partition("=")
            out.append(f"{name}={REDACTED}" if is_secret_name(name) else f"{name}={_scrub(value)}")
        elif arg.startswith("-") and len(arg) > 1 and not _is_number(arg):
            out.append(arg)
            hide_next = is_secret_name(arg)
        elif re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", arg):
            name, _, value = arg.partition("=")
            out.append(f"{name}={REDACTED}" if is_secret_name(name) else f"{name}={_scrub(value)}")
        else:
            out.append(_scrub(arg))
    return out


def _is_number(arg: str) -> bool:
    try:
        float(arg)
        return True
    except ValueError:
        return False


def argv_for_record(argv=None) -> list[str] | None:
    """What a run records of ``argv`` (default ``sys.argv``): redacted, or None when
    ``$MLOPS_RECORD_ARGV`` is ``0``/``no``/``false``."""
    if os.environ.get("MLOPS_RECORD_ARGV", "").strip().lower() in ("0", "no", "false", "off"):
        return None
    return redact_argv(sys.argv if argv is None else argv)


__all__ = ["REDACTED", "SECRET_WORDS", "argv_for_record", "is_secret_name", "redact_argv"]
