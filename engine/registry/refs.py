"""Registry references: ``name``, ``name@alias``, ``name:v3``, ``name:<id prefix>``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..store.store import NAME_RE
from .errors import MalformedReference

_VER_RE = re.compile(r"^v(\d+)$")
_HEX_RE = re.compile(r"^[0-9a-f]{4,64}$")
ALIAS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")
GATE_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(<=|>=|<|>)\s*$")
KINDS = ("model", "checkpoint", "dataset", "profile")
FORMS = "name, name@alias, name:vN or name:<id prefix of 4+ hex digits>"


@dataclass(frozen=True)
class Ref:
    name: str
    alias: str | None = None
    version: int | None = None
    id_prefix: str | None = None

    def __str__(self) -> str:
        if self.alias:
            return f"{self.name}@{self.alias}"
        if self.version:
            return f"{self.name}:v{self.version}"
        if self.id_prefix:
            return f"{self.name}:{self.id_prefix}"
        return self.name


def parse_ref(ref) -> Ref:
    """Parse a reference string; a bare name means ``name@latest``."""
    if not isinstance(ref, str):
        raise MalformedReference(f"reference must be a string ({FORMS}), got {type(ref).__name__}")
    name, alias, sel = ref, None, None
    if "@" in ref:
        name, _, alias = ref.partition("@")
        if not ALIAS_RE.match(alias):
            raise MalformedReference(f"malformed reference {ref!r}: alias {alias!r} must start with "
                                     f"a letter (letters, digits, '.', '_', '-'); expected {FORMS}")
    elif ":" in ref:
        name, _, sel = ref.partition(":")
    if not NAME_RE.match(name):
        raise MalformedReference(f"malformed reference {ref!r}: expected {FORMS}")
    if sel is None:
        return Ref(name, alias=alias)
    m = _VER_RE.match(sel)
    if m and int(m.group(1)) >= 1:
        return Ref(name, version=int(m.group(1)))
    if _HEX_RE.match(sel):
        return Ref(name, id_prefix=sel)
    raise MalformedReference(f"malformed reference {ref!r}: {sel!r} is neither vN (N >= 1) nor an "
                             f"id prefix of 4-64 lowercase hex digits; expected {FORMS}")


def check_alias(alias) -> str:
    if not isinstance(alias, str) or not ALIAS_RE.match(alias):
        raise ValueError(f"alias must start with a letter and hold letters, digits, '.', '_' or "
                         f"'-' (at most 64), got {alias!r}")
    if alias == "latest":
        raise ValueError("alias 'latest' is maintained automatically (the newest version); "
                         "choose another name")
    return alias


def parse_gate(gate) -> tuple[str, str]:
    """``"val_loss<="`` -> ``("val_loss", "<=")``: the new version's metric must be <= the holder's."""
    if isinstance(gate, tuple) and len(gate) == 2:
        gate = f"{gate[0]}{gate[1]}"
    m = GATE_RE.match(gate) if isinstance(gate, str) else None
    if not m:
        from .errors import GateError

        raise GateError(f"gate must look like 'metric<=', 'metric<', 'metric>=' or 'metric>' "
                        f"(the new version's metric compared with the holder's), got {gate!r}")
    return m.group(1), m.group(2)


def gate_passes(new: float, op: str, held: float) -> bool:
    return {"<=": new <= held, "<": new < held, ">=": new >= held, ">": new > held}[op]
