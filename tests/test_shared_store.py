"""A store shared by the members of a group (issue 15, defect 11), with two real users.

The test (root) creates a group and two users in it, a project directory owned by
the group with mode 2770, and then runs the CLI as each user in turn, under umask 022:
the first creates the store there, the second snapshots, registers, collects and
verifies in it, and the first reads what the second wrote.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess

import pytest

GROUP, USERS = "mlopsshare", ("mlopsu1", "mlopsu2")

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"),
                                reason="needs root and useradd to create the second user")


def _ensure_users():
    try:
        grp.getgrnam(GROUP)
    except KeyError:
        subprocess.run(["groupadd", GROUP], check=True)
    for u in USERS:
        try:
            pwd.getpwnam(u)
        except KeyError:
            subprocess.run(["useradd", "--no-create-home", "-G", GROUP, u], check=True)
    return grp.getgrnam(GROUP).gr_gid


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    gid = _ensure_users()
    base = tmp_path_factory.mktemp("shared")
    os.chmod(base, 0o755)
    for p in list(base.parents)[:3]:  # pytest's own temp dirs are 0700
        if str(p).startswith("/tmp/pytest-of-"):
            os.chmod(p, 0o755)
    # The forked users cannot read the interpreter's library where it lives under a
    # private home (pyenv under /root): every module they need is imported here first,
    # by one run of what they do, as root, in a scratch store.
    scratch = base / "scratch"
    src = scratch / "src"
    src.mkdir(parents=True)
    (src / "a.txt").write_text("warm")
    _snapshot(str(src), "w", str(scratch / "s"))
    _snapshot(str(src), "w2", str(scratch / "s"))
    _register(str(src / "a.txt"), str(scratch / "s"))
    _gc(str(scratch / "s"))
    import engine.data as data

    data.snapshot(src, name="two", store=scratch / "s")
    from engine.registry import Registry

    Registry(str(scratch / "s"), index_path=":memory:").register("clf", str(src / "a.txt"))
    _read_back(str(scratch / "s"), str(scratch / "out"), str(scratch / "pulled"))
    proj = base / "project"
    proj.mkdir()
    os.chown(proj, 0, gid)
    os.chmod(proj, 0o2770)
    homes = {}
    for u in USERS:
        h = base / f"home-{u}"
        h.mkdir()
        pw = pwd.getpwnam(u)
        os.chown(h, pw.pw_uid, pw.pw_gid)
        homes[u] = h
    return proj, homes, gid


def _as(user: str, homes, fn, *args):
    """Run ``fn(*args)`` in a forked child that has become ``user`` (its uid, its group,
    the shared group, umask 022): a real second user without a second interpreter (the
    interpreter may live where other users cannot run it)."""
    import multiprocessing as mp

    pw = pwd.getpwnam(user)
    q = mp.get_context("fork").Queue()

    def child():
        try:
            os.setgroups([grp.getgrnam(GROUP).gr_gid])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            os.umask(0o022)
            os.environ["HOME"] = os.environ["MLOPS_CACHE_DIR"] = str(homes[user])
            q.put(("ok", fn(*args)))
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            q.put(("error", f"{type(exc).__name__}: {exc}"))

    p = mp.get_context("fork").Process(target=child)
    p.start()
    status, value = q.get(timeout=300)
    p.join(60)
    assert status == "ok", f"{user}: {fn.__name__}{args}: {value}"
    return value


def _snapshot(src, name, store):
    import engine.data as data

    return data.snapshot(src, name=name, store=store, progress=False).ref


def _register(path, store):
    from engine.registry import Registry

    return Registry(store, index_path=":memory:").register("clf", path).ref


def _gc(store):
    import engine.data as data

    return data.gc(store=store, keep_last=1, grace=0).versions_deleted


def _read_back(store, out, w_out):
    import engine.data as data
    from engine.registry import Registry

    data.checkout("two:v1", out, store=store)
    rep = data.verify(store=store)
    reg = Registry(store, index_path=":memory:")
    v = reg.verify()
    w_out = reg.pull("clf:v1", w_out)  # a directory: the one file goes in it
    return rep.ok, v["ok"], [str(p) for p in rep.problems], v["problems"], w_out


def _tree(user, homes, name: str, text: str):
    d = homes[user] / name
    pw = pwd.getpwnam(user)
    d.mkdir(exist_ok=True)
    os.chown(d, pw.pw_uid, pw.pw_gid)
    for i in range(3):
        f = d / f"{i}.txt"
        f.write_text(f"{text} {i}\n" * 2000)
        os.chown(f, pw.pw_uid, pw.pw_gid)
    return d


def test_two_users_of_one_group_share_a_store(project):
    proj, homes, gid = project
    store = str(proj / "store")
    u1, u2 = USERS
    # user 1 creates the store (by snapshotting into it)
    assert _as(u1, homes, _snapshot, str(_tree(u1, homes, "d1", "one")), "one", store) == "one:v1"
    # user 2 writes into every part of it: a dataset, a model, a second dataset version
    assert _as(u2, homes, _snapshot, str(_tree(u2, homes, "d2", "two")), "two", store) == "two:v1"
    weights = homes[u2] / "w.bin"
    weights.write_bytes(os.urandom(50_000))
    os.chown(weights, pwd.getpwnam(u2).pw_uid, -1)
    assert _as(u2, homes, _register, str(weights), store) == "clf:v1"
    _as(u2, homes, _snapshot, str(_tree(u2, homes, "d1b", "one again")), "one", store)
    # user 2 collects user 1's old version; user 1 reads user 2's data and verifies
    assert _as(u2, homes, _gc, store) == ["one:v1"]
    out = homes[u1] / "out"
    ok_data, ok_reg, p1, p2, w_out = _as(u1, homes, _read_back, store, str(out),
                                         str(homes[u1] / "pulled"))
    assert ok_data and ok_reg, (p1, p2)
    assert (out / "1.txt").read_text() == "two 1\n" * 2000
    assert open(w_out, "rb").read() == weights.read_bytes()

    # every directory: the group's, group-writable, set-group-ID; every file: group rw
    bad = []
    for dirpath, dirs, files in os.walk(store):
        for name in dirs + [""]:
            p = os.path.join(dirpath, name) if name else dirpath
            st = os.stat(p)
            if st.st_gid != gid or st.st_mode & 0o2070 != 0o2070:
                bad.append((p, oct(st.st_mode), st.st_gid))
        for name in files:
            st = os.stat(os.path.join(dirpath, name))
            if st.st_gid != gid or st.st_mode & 0o060 != 0o060:
                bad.append((os.path.join(dirpath, name), oct(st.st_mode), st.st_gid))
    assert not bad, bad[:10]


def test_a_one_user_store_keeps_the_umask(tmp_path):
    import engine.data as data

    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a")
    old = os.umask(0o077)
    try:
        os.chmod(tmp_path, 0o700)
        data.snapshot(src, name="a", store=tmp_path / "store")
    finally:
        os.umask(old)
    for dirpath, _dirs, files in os.walk(tmp_path / "store"):
        for n in files:
            assert stat.S_IMODE(os.stat(os.path.join(dirpath, n)).st_mode) & 0o077 == 0
