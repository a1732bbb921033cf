"""The stderr progress bar: drawn only on a terminal (or when forced), with rate and ETA."""

import io

from engine.progress import Progress


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_silent_when_not_a_terminal():
    s = io.StringIO()
    with Progress(100, "x", stream=s) as p:
        p.advance(50, files=1)
    assert s.getvalue() == ""


def test_draws_on_a_terminal():
    s = FakeTTY()
    with Progress(4 << 20, "snapshot ds", stream=s, min_interval=0) as p:
        p.advance(1 << 20, files=3)
    out = s.getvalue()
    assert "snapshot ds" in out and "25.0%" in out and "3 files" in out and "ETA" in out
    assert out.endswith("\n") and "100" not in out.split("\r")[1][:20]


def test_forced_and_unknown_total():
    s = io.StringIO()
    with Progress(None, enabled=True, stream=s, min_interval=0) as p:
        p.advance(2048)
    assert "2.0 KiB" in s.getvalue() and "ETA" not in s.getvalue()
