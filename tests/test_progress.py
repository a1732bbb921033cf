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


def test_counts_other_units():
    s = FakeTTY()
    with Progress(40, "verify", stream=s, min_interval=0, unit="chunks") as p:
        p.advance(10)
    out = s.getvalue()
    assert "10/40 chunks" in out and "chunks/s" in out and "B/s" not in out


def test_human_bytes_and_counts():
    from engine.progress import count, human_bytes

    assert [human_bytes(n) for n in (0, 1023, 1024, 1536 * 1024, 5 << 40)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 MiB", "5.0 TiB"]
    assert (count(1, "chunk"), count(2, "chunk"), count(0, "file")) == ("1 chunk", "2 chunks", "0 files")
    assert (count(1, "entry", "entries"), count(3, "entry", "entries")) == ("1 entry", "3 entries")
    assert count(12345, "chunk") == "12,345 chunks"
