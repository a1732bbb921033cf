"""A dependency-free progress bar on stderr: bytes, files, rate and ETA.

It draws only when stderr is a terminal (or when forced), so logs of batch
jobs under Slurm stay clean.
"""

from __future__ import annotations

import sys
import time


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class Progress:
    """``with Progress(total_bytes, label) as p: p.advance(nbytes, files=1)``.

    Parameters
    ----------
    total : int or None
        Bytes expected; with ``None`` no ETA is shown.
    enabled : bool or None
        ``None`` draws only if stderr is a TTY.
    """

    def __init__(self, total: int | None, label: str = "", enabled: bool | None = None,
                 stream=None, min_interval: float = 0.1):
        self.stream = stream or sys.stderr
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled
        self.total = total
        self.label = label
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

    def _draw(self, now: float, final: bool = False) -> None:
        dt = max(now - self._t0, 1e-9)
        rate = self.done / dt
        parts = [self.label] if self.label else []
        if self.total:
            frac = min(self.done / self.total, 1.0)
            width = 24
            fill = int(frac * width)
            parts.append(f"[{'#' * fill}{'.' * (width - fill)}] {frac * 100:5.1f}%")
            parts.append(f"{_human(self.done)}/{_human(self.total)}")
        else:
            parts.append(_human(self.done))
        if self.files:
            parts.append(f"{self.files} files")
        parts.append(f"{_human(rate)}/s")
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
