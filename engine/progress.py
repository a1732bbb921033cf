"""A dependency-free progress bar on stderr (bytes, files, rate and ETA), and the two
helpers every human-readable output shares: sizes (``1.2 MiB``) and counts (``1 chunk``).

The bar draws only when stderr is a terminal (or when forced), so logs of batch
jobs under Slurm stay clean.
"""

from __future__ import annotations

import sys
import time


def human_bytes(n: float) -> str:
    """``n`` bytes in binary units: ``"512 B"``, ``"1.2 MiB"``; exact bytes belong in JSON."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 chunk"``, ``"2 chunks"``, ``"3 entries"`` (give ``plural`` where adding s is wrong)."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


class Progress:
    """``with Progress(total_bytes, label) as p: p.advance(nbytes, files=1)``.

    Parameters
    ----------
    total : int or None
        Bytes expected; with ``None`` no ETA is shown.
    enabled : bool or None
        ``None`` draws only if stderr is a TTY.
    unit : str
        ``"bytes"`` (human sizes and a byte rate) or the plural name of what is counted
        (``"columns"``, ``"chunks"``): plain counts, ``advance(n)`` counts ``n`` of them.
    """

    def __init__(self, total: int | None, label: str = "", enabled: bool | None = None,
                 stream=None, min_interval: float = 0.1, unit: str = "bytes"):
        self.stream = stream or sys.stderr
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled
        self.total = total
        self.label = label
        self.unit = unit
        self.done = 0
        self.files = 0
        self._t0 = time.monotonic()
        self._last = 0.0
        self._min_interval = min_interval

    def advance(self, nbytes: int = 0, files: int = 0) -> None:
        self.done += nbytes
        self.files += files
        if self.enabled:
            now = time.monotonic()
            if now - self._last >= self._min_interval:
                self._last = now
                self._draw(now)

    def _amount(self, n: float) -> str:
        return human_bytes(n) if self.unit == "bytes" else f"{n:,.0f}"

    def _draw(self, now: float, final: bool = False) -> None:
        dt = max(now - self._t0, 1e-9)
        rate = self.done / dt
        parts = [self.label] if self.label else []
        if self.total:
            frac = min(self.done / self.total, 1.0)
            width = 24
            fill = int(frac * width)
            parts.append(f"[{'#' * fill}{'.' * (width - fill)}] {frac * 100:5.1f}%")
            parts.append(f"{self._amount(self.done)}/{self._amount(self.total)}"
                         + ("" if self.unit == "bytes" else f" {self.unit}"))
        else:
            parts.append(self._amount(self.done) + ("" if self.unit == "bytes" else f" {self.unit}"))
        if self.files:
            parts.append(f"{self.files} files")
        parts.append(f"{human_bytes(rate)}/s" if self.unit == "bytes" else f"{rate:,.1f} {self.unit}/s")
        if self.total and rate > 0 and not final:
            parts.append(f"ETA {max(self.total - self.done, 0) / rate:.0f}s")
        self.stream.write("\r" + "  ".join(parts) + ("\n" if final else ""))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic(), final=True)
            self.enabled = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
