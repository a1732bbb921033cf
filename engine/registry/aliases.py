"""Aliases and promotion gates: moving ``name@alias`` as one compare-and-set commit.

:meth:`~RegistryAliases.promote` and :meth:`~RegistryAliases.set_alias` return a
:class:`Promotion`: what the alias named before and after, and how the gate decided,
as the commit recorded it (the state the move was checked against).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

from .errors import GateError, GateRejected, UnknownReference
from .index import metric_text
from .models import ModelVersion
from .refs import check_alias, gate_passes, parse_gate


@dataclass(frozen=True)
class GateCheck:
    """How a promotion gate compared the new version with the holder.

    ``held`` is None when there was no holder, or the holder lacked the metric (then
    only ``force`` moved the alias). ``passed`` is True unless the holder's value was
    compared and the new one did not beat it.
    """

    metric: str
    op: str
    new: float
    held: float | None
    passed: bool


@dataclass(frozen=True)
class Promotion:
    """The outcome of moving an alias (:meth:`~RegistryAliases.promote`, ``set_alias``).

    Attributes
    ----------
    name, alias : str
        The artifact and its alias.
    version : int
        The version the alias names now.
    previous : int or None
        The version it named before (None: unset; ``version`` itself when nothing moved).
    moved : bool
        False when the version already held the alias (nothing was committed).
    forced : bool
        ``force=True`` overrode a gate that failed or could not be evaluated.
    gate : GateCheck or None
        The gate's comparison, when a gate was given and the alias moved.
    outcome : str
        ``"unchanged"``, ``"moved"`` (no gate), ``"passed"``, ``"no holder"`` (a gate
        with nothing to compare with) or ``"forced"``.
    model : ModelVersion
        The version the alias names now, with its aliases.

    Other attributes of a ModelVersion (``id``, ``aliases``, ...) are forwarded to
    ``model``, as ``promote`` returned the ModelVersion itself before (deprecated:
    use ``.model``).

    Examples
    --------
    >>> import tempfile
    >>> from engine.registry import Registry
    >>> reg = Registry(tempfile.mkdtemp() + "/store", index_path=":memory:")
    >>> _ = reg.register("clf", b"a", metrics={"loss": 0.3})
    >>> _ = reg.register("clf", b"b", metrics={"loss": 0.2})
    >>> reg.promote("clf:v1", "prod").message
    'clf@prod: unset -> v1'
    >>> p = reg.promote("clf:v2", "prod", gate="loss<=")
    >>> p.outcome, p.previous, p.gate.held
    ('passed', 1, 0.3)
    """

    name: str
    alias: str
    version: int
    previous: int | None
    moved: bool
    forced: bool
    gate: GateCheck | None
    outcome: str
    model: ModelVersion

    @property
    def ref(self) -> str:
        """``name:vN`` of the version the alias names now."""
        return f"{self.name}:v{self.version}"

    @property
    def message(self) -> str:
        """One line saying what happened (what ``mlops model promote`` prints)."""
        if not self.moved:
            return f"{self.ref} already holds {self.name}@{self.alias}; nothing to do"
        prev = f"v{self.previous}" if self.previous else "unset"
        line = f"{self.name}@{self.alias}: {prev} -> v{self.version}"
        g = self.gate
        if g is not None:
            if self.previous is None:
                line += f" (gate {g.metric}{g.op}: no holder to compare with)"
            elif g.held is None:
                line += f" (gate {g.metric}{g.op}: the holder v{self.previous} has no {g.metric})"
            else:
                line += (f" (gate {g.metric}{g.op}: {metric_text(g.new)} vs {metric_text(g.held)}"
                         f"{', FAILED' if not g.passed else ''})")
        return line + (" (FORCED)" if self.forced else "")

    def to_dict(self) -> dict:
        """``ref``, ``name``, ``alias``, ``version``, ``previous``, ``moved``, ``forced`` and
        ``gate`` (``metric``, ``op``, ``new``, ``held``, ``passed``, or None): JSON-ready,
        as ``mlops model promote --json`` prints it."""
        return {"ref": self.ref, "name": self.name, "alias": self.alias, "version": self.version,
                "previous": self.previous, "moved": self.moved, "forced": self.forced,
                "gate": asdict(self.gate) if self.gate is not None else None}

    def __getattr__(self, attr):
        if attr.startswith("__") or attr == "model":
            raise AttributeError(attr)
        value = getattr(self.model, attr)  # AttributeError names the attribute
        warnings.warn(f"Promotion.{attr} is deprecated (promote() used to return the "
                      f"ModelVersion); use Promotion.model.{attr}", DeprecationWarning,
                      stacklevel=2)
        return value


def _outcome(act: dict | None, forced: bool) -> str:
    if act is None:
        return "unchanged"
    if forced:
        return "forced"
    if "gate" not in act:
        return "moved"
    return "no holder" if act["previous"] is None else "passed"


class RegistryAliases:
    """The alias-moving methods of :class:`~engine.registry.Registry` (a mixin: they use
    its public ``get``, ``commit``, ``index``, ``metric_of`` and ``metrics_of``)."""

    def set_alias(self, ref, alias: str) -> Promotion:
        """Point ``alias`` of the artifact at the version ``ref`` names (unconditionally)."""
        return move_alias(self, ref, alias, None, False, "alias")

    def remove_alias(self, name: str, alias: str) -> None:
        """Remove ``name@alias``; UnknownReference if it is not set."""
        check_alias(alias)

        def build():
            prev = self.index.one("SELECT version FROM aliases WHERE name=? AND alias=?", (name, alias))
            if prev is None:
                raise UnknownReference(f"{name!r} has no alias {alias!r}")
            return [{"op": "alias", "name": name, "alias": alias, "version": None, "previous": prev[0]}]

        self.commit(build)

    def promote(self, ref, alias: str, gate=None, *, force: bool = False) -> Promotion:
        """Move ``alias`` to ``ref`` if it passes ``gate`` against the current holder.

        ``gate="val_loss<="`` moves the alias only if the new version's ``val_loss`` is
        <= the holder's (``<``, ``>=``, ``>`` likewise). A version's metric is the one
        given at registration, else the last value its run logged. The check and the
        move are one compare-and-set commit: a concurrent move makes it re-check
        against the new holder. ``force=True`` moves regardless; when that overrides a
        failed (or unevaluable) gate, the commit records ``forced`` and the log says so.
        Raises :class:`GateRejected` if the gate fails. Returns a :class:`Promotion`.
        """
        return move_alias(self, ref, alias, gate, force, "promote")


def move_alias(reg, ref, alias, gate, force, how) -> Promotion:
    """Move ``alias`` to ``ref`` (checking ``gate`` unless ``force``) in one commit."""
    check_alias(alias)
    gate = parse_gate(gate) if gate is not None else None
    mv = reg.get(ref)
    built: list = [None]  # the action of the last build (the one committed)

    def build():
        held = reg.index.one("SELECT version FROM aliases WHERE name=? AND alias=?",
                             (mv.name, alias))
        held = held[0] if held else None
        built[0] = None
        if held == mv.version:
            return []
        act = {"op": "alias", "name": mv.name, "alias": alias, "version": mv.version,
               "previous": held, "how": how}
        if gate is not None:
            key, op = gate
            new = reg.metric_of(mv, key)
            if new is None:
                raise GateError(f"gate {key}{op}: {mv.ref} has no metric {key!r} "
                                f"(it has: {', '.join(sorted(reg.metrics_of(mv))) or 'none'})")
            holder = reg.get(f"{mv.name}:v{held}", refresh=False) if held else None
            old = reg.metric_of(holder, key) if holder else None
            act["gate"] = {"metric": key, "op": op, "new": new, "held": old}
            if holder is not None and old is None:
                if not force:
                    raise GateError(f"gate {key}{op}: the holder of {alias!r}, {holder.ref}, "
                                    f"has no metric {key!r}; pass force=True to move anyway")
                act["forced"] = True  # the gate could not be evaluated: an override
            elif old is not None and not gate_passes(new, op, old):
                if not force:
                    raise GateRejected(f"{mv.ref} not promoted to {alias!r}: {key} {new} is "
                                       f"not {op} {old} of the holder {holder.ref}")
                act["forced"] = True  # the gate failed and was overridden
        built[0] = act
        return [act]

    reg.commit(build)
    act = built[0]
    forced = bool(act and act.get("forced"))
    check = None
    if act is not None and "gate" in act:
        g = act["gate"]
        check = GateCheck(g["metric"], g["op"], g["new"], g["held"],
                          g["held"] is None or gate_passes(g["new"], g["op"], g["held"]))
    return Promotion(mv.name, alias, mv.version, act["previous"] if act else mv.version,
                     act is not None, forced, check, _outcome(act, forced),
                     reg.get(mv.ref, refresh=False))
