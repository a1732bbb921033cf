"""Tamper-evident registry commits (issue 15, defect 2; commit format 2): every commit
carries a checksum over its whole content and the checksum of the commit before it, so
a changed, removed, reordered or replaced commit is detected, named by number, and not
acted on."""

import json
import os
import shutil

import pytest

from engine.registry import Registry, RegistryCorruption
from engine.registry.log import commit_checksum, commit_key

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "registry_v1")


@pytest.fixture
def store(tmp_path):
    root = str(tmp_path / "s")
    reg = Registry(root, index_path=":memory:")
    reg.register("clf", b"weights one")
    reg.register("clf", b"weights two")
    reg.register("clf", b"weights three")
    reg.set_alias("clf:v2", "production")   # commit 4
    reg.register("other", b"x")              # commit 5
    reg.close()
    return root


def path_of(root, seq):
    return os.path.join(root, *commit_key(seq).split("/"))


def edit(root, seq, fn):
    p = path_of(root, seq)
    os.chmod(p, 0o644)
    text = open(p).read()
    open(p, "w").write(fn(text))


def cold(root):
    return Registry(root, create=False, index_path=":memory:")


def test_commits_carry_a_checksum_and_the_previous_one(store):
    bodies = [json.loads(open(path_of(store, s)).read()) for s in range(1, 6)]
    assert [b["format_version"] for b in bodies] == [2] * 5
    assert bodies[0]["prev"] is None
    for before, b in zip(bodies, bodies[1:]):
        assert b["prev"] == before["checksum"] == commit_checksum(before)
    rep = cold(store).verify()
    assert rep["ok"] and rep["unchecked_commits"] == 0


def test_a_changed_alias_is_refused_not_followed(store):
    # the probe's case: "version":2 -> 3 in an alias action made production point at v3
    edit(store, 4, lambda t: t.replace('"version":2', '"version":3'))
    reg = cold(store)
    with pytest.raises(RegistryCorruption, match="00000000000000000004.json fails its checksum"):
        reg.get("clf@production")
    rep = cold(store).verify()
    assert not rep["ok"]
    assert any(p.get("seq") == 4 and "checksum" in p.get("detail", "") for p in rep["problems"])


@pytest.mark.parametrize("flip", range(0, 400, 37))
def test_any_flipped_byte_is_detected(store, flip):
    p = path_of(store, 4)
    data = bytearray(open(p, "rb").read())
    data[flip % len(data)] ^= 0x01
    os.chmod(p, 0o644)
    open(p, "wb").write(bytes(data))
    with pytest.raises(RegistryCorruption, match="0004.json"):
        cold(store).refresh()


def test_a_removed_commit_is_detected(store):
    os.chmod(path_of(store, 3), 0o644)
    os.remove(path_of(store, 3))
    with pytest.raises(RegistryCorruption, match="commit 3 .* is missing but commit 4 exists"):
        cold(store).refresh()
    rep = cold(store).verify()
    assert not rep["ok"] and any(p["problem"] == "commit missing" and p["seq"] == 3
                                 for p in rep["problems"]), rep["problems"]


def test_reordered_commits_are_detected(store):
    a, b = open(path_of(store, 2)).read(), open(path_of(store, 3)).read()
    edit(store, 2, lambda _: b)
    edit(store, 3, lambda _: a)
    with pytest.raises(RegistryCorruption, match="does not hold commit 2"):
        cold(store).refresh()


def test_a_replaced_commit_breaks_the_chain(store):
    # rewritten with a valid checksum of its own: the next commit no longer follows it
    def forge(text):
        body = json.loads(text)
        body["actions"][0]["version"] = 3
        body["checksum"] = commit_checksum(body)
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    edit(store, 4, forge)
    with pytest.raises(RegistryCorruption, match="commit 5 does not follow commit 4"):
        cold(store).refresh()
    rep = cold(store).verify()
    assert {"problem": "commit chain broken", "seq": 5} == {
        k: v for k, v in next(p for p in rep["problems"] if p["problem"] ==
                              "commit chain broken").items() if k != "detail"}


def test_format_1_commits_are_read_and_reported_unchecked(tmp_path):
    root = tmp_path / "g"
    shutil.copytree(GOLDEN, root)
    for dp, dirs, files in os.walk(root):
        for n in dirs + files:
            os.chmod(os.path.join(dp, n), 0o755 if n in dirs else 0o644)
    reg = Registry(str(root), create=False, index_path=":memory:")
    rep = reg.verify()
    assert rep["ok"] and rep["unchecked_commits"] == rep["commits"] == 7
    reg.register("clf", b"after the upgrade")  # a format-2 commit after format-1 ones
    body = json.loads(open(path_of(str(root), 8)).read())
    assert body["format_version"] == 2
    assert body["prev"] == commit_checksum(json.loads(open(path_of(str(root), 7)).read()))
    rep = Registry(str(root), create=False, index_path=":memory:").verify()
    assert rep["ok"] and rep["unchecked_commits"] == 7 and rep["commits"] == 8
