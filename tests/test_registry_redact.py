"""What a run records of its command line (issue 15, defect 10): secrets redacted, argv
optional. Commits are immutable, so a token written into one is there forever."""

import json
import os

import pytest

from engine.registry import Registry
from engine.registry.log import commit_key
from engine.registry.redact import REDACTED, is_secret_name, redact_argv

TOKEN = "hf_" + "a1B2c3D4e5F6g7H8i9J0k1L2"


@pytest.mark.parametrize(("argv", "want"), [
    (["t.py", f"--hf-token={TOKEN}"], ["t.py", "--hf-token=***"]),
    (["t.py", "--password", "hunter2", "--lr", "0.1"], ["t.py", "--password", "***", "--lr", "0.1"]),
    (["t.py", "--api_key", "abc", "--epochs", "3"], ["t.py", "--api_key", "***", "--epochs", "3"]),
    (["t.py", "--db", "postgres://ann:s3cret@db:5432/x"],
     ["t.py", "--db", "postgres://ann:***@db:5432/x"]),
    (["t.py", "--db=https://u:p@host/path"], ["t.py", "--db=https://u:***@host/path"]),
    (["t.py", "HF_TOKEN=xyz", "DEBUG=1"], ["t.py", "HF_TOKEN=***", "DEBUG=1"]),
    (["t.py", TOKEN], ["t.py", REDACTED]),                              # a bare token
    (["t.py", "AKIAABCDEFGHIJKLMNOP"], ["t.py", REDACTED]),             # an AWS key id
    (["t.py", "--secret", "--lr", "0.1"], ["t.py", "--secret", "--lr", "0.1"]),  # a flag alone
    (["t.py", "--offset", "-3", "--token", "-x9"], ["t.py", "--offset", "-3", "--token", "***"]),
    (["t.py", "data/train.parquet", "--lr=0.01"], ["t.py", "data/train.parquet", "--lr=0.01"]),
])
def test_redact_argv(argv, want):
    assert redact_argv(argv) == want


def test_secret_names_and_extra_words(monkeypatch):
    assert is_secret_name("--hf-token") and is_secret_name("DB_PASSWORD")
    assert is_secret_name("--githubtoken") and is_secret_name("-k_secret")
    assert not is_secret_name("--lr") and not is_secret_name("--monkey-patch")
    assert not is_secret_name("--salt")
    monkeypatch.setenv("MLOPS_REDACT", "salt, pepper")
    assert is_secret_name("--salt") and redact_argv(["--pepper", "x"]) == ["--pepper", "***"]


def _commit_text(store, seq):
    return open(os.path.join(store, *commit_key(seq).split("/"))).read()


def test_start_run_records_a_redacted_argv_and_can_record_none(tmp_path, monkeypatch):
    store = str(tmp_path / "s")
    monkeypatch.setattr("sys.argv", ["train.py", f"--hf-token={TOKEN}",
                                     "--db", "postgres://user:pw@db/x", "--lr", "0.1"])
    reg = Registry(store)
    with reg.start_run("train") as run:
        pass
    text = "".join(_commit_text(store, s) for s in range(1, reg.refresh() + 1))
    assert TOKEN not in text and "user:pw@" not in text  # nowhere in the immutable log
    start = json.loads(_commit_text(store, 1))["actions"][0]
    assert start["info"]["argv"] == ["train.py", "--hf-token=***", "--db",
                                     "postgres://user:***@db/x", "--lr", "0.1"]
    assert reg.get_run(run.id)["info"]["argv"] == start["info"]["argv"]
    monkeypatch.setenv("MLOPS_RECORD_ARGV", "0")
    with reg.start_run("train") as run2:
        pass
    assert reg.get_run(run2.id)["info"]["argv"] is None
