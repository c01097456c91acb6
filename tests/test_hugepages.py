"""Huge pages: named hugetlbfs rings across processes, memfd-hugetlb rings passed by
descriptor, THP, and an honest fallback.

Tests that need huge pages change the host through shmring.testing.huge_pages()
(the module fixture `huge`): vm.nr_hugepages raised only as far as needed, and a
hugetlbfs mount on a temporary directory inside a private mount namespace when
no usable one exists; everything is put back afterwards, also on failure.
Without root they skip, saying why.
"""
from __future__ import annotations

import errno
import gc
import json
import os
import pickle
import socket
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import shmring
from shmring import testing
from shmring._hugepages import pool

from conftest import HERE, finish, run_python

NEEDS_ROOT = "needs root: reserves huge pages (vm.nr_hugepages) and mounts hugetlbfs"
PAGES = 16                       # the pool the module needs free
FRAME = (1 << 17,)               # 1 MiB of uint64 per message
PAGE_4K = os.sysconf("SC_PAGE_SIZE")


@pytest.fixture(scope="module")
def huge():
    """PAGES free huge pages and a writable hugetlbfs directory for this module."""
    if os.geteuid() != 0:
        pytest.skip(NEEDS_ROOT)
    host = testing.huge_pages(PAGES)
    try:
        setup = host.__enter__()
    except OSError as exc:
        pytest.skip(f"cannot reserve huge pages or mount hugetlbfs on this host: {exc}")
    try:
        yield setup
    finally:
        host.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def collect_mappings():
    """A ring's mapping (and its huge pages) goes when the Ring is garbage; a test
    that caught an exception holds its frame, and so its rings, in a cycle."""
    yield
    gc.collect()


@pytest.fixture
def empty_pool():
    """No free huge pages (vm.nr_hugepages = 0) for one test, then as it was."""
    if os.geteuid() != 0:
        pytest.skip(NEEDS_ROOT)
    empty = testing.no_free_huge_pages()
    try:
        empty.__enter__()
    except OSError as exc:   # a container's read-only /proc/sys, say
        pytest.skip(f"cannot set vm.nr_hugepages here: {exc}")
    try:
        assert pool().free == 0
        yield
    finally:
        empty.__exit__(None, None, None)


def info_in_child(name: str, env: dict[str, str] | None = None, **attach_kw: object) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", "import json, sys, shmring\n"
         "r = shmring.attach(sys.argv[1], **json.loads(sys.argv[2]))\n"
         "print(json.dumps(r.info(), default=str))", name, json.dumps(attach_kw)],
        capture_output=True, text=True, timeout=60, cwd=HERE, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def free_pages() -> int:
    p = pool()
    return p.free - p.reserved


def host_state() -> tuple:
    return (open(testing.NR_HUGEPAGES).read(), os.readlink("/proc/self/ns/mnt"),
            testing._hugepages.hugetlbfs_dirs())


def test_huge_pages_puts_the_host_back_even_on_failure():
    """First in the module, before the `huge` fixture exists: the real setup."""
    if os.geteuid() != 0:
        pytest.skip(NEEDS_ROOT)
    before = host_state()
    made = None
    with pytest.raises(RuntimeError, match="inside"):
        try:
            with testing.huge_pages(3) as made:
                assert free_pages() >= 3 and made.dir in testing._hugepages.hugetlbfs_dirs()
                with shmring.create(testing.unique_name(), 2, slot_size=8, hugepages="require") as r:
                    r.unlink()
                    raise RuntimeError("inside")
        except OSError as exc:
            if made is None:    # the setup itself: no huge pages or mounts in this container
                pytest.skip(f"cannot reserve huge pages or mount hugetlbfs on this host: {exc}")
            raise
    assert host_state() == before
    assert not made.mounted or not os.path.exists(made.dir)


# -- no huge pages asked for, or none to be had ---------------------------------------

def test_off_gives_4k_shm(name):
    with shmring.create(name, 4, slot_size=1 << 20, hugepages="off") as r:
        i = r.info()
        assert (i["backing"], i["page_size"], i["fallback"]) == ("shm", PAGE_4K, None)
        assert i["path"] == f"/dev/shm/shmring.{name}"
        assert i["size_bytes"] % PAGE_4K == 0 and i["size_bytes"] == os.stat(i["path"]).st_size


def test_auto_without_hugetlbfs_falls_back_and_says_why(name):
    with shmring.create(name, 2, slot_size=1 << 20, hugetlbfs=False) as r:
        i = r.info()
        assert i["backing"] in ("shm", "thp")
        assert "hugetlbfs=False" in i["fallback"] and "transparent huge pages" in i["fallback"]
        with shmring.attach(name) as other:
            assert (other.info()["backing"], other.info()["fallback"]) == ("shm", None)


def test_auto_falls_back_when_the_pool_is_empty(name, empty_pool):
    with shmring.create(name, 2, slot_size=1 << 20) as r:
        i = r.info()
        assert i["backing"] in ("shm", "thp")
        assert "0 of the pool" in i["fallback"] and "nr_hugepages" in i["fallback"]
        r.put(b"x" * 100)
        assert shmring.attach(name).get() == b"x" * 100
    assert testing.ring_files()  # the ring is where ls looks
    assert {f.backing for f in testing.ring_files() if f.name == name} <= {"shm", "thp"}


def test_require_with_an_empty_pool_fails_cleanly(name, empty_pool):
    before = testing.segments()
    for kw in ({}, {"hugetlbfs": False}):
        with pytest.raises(shmring.ShmringError) as exc:
            shmring.create(name, 2, slot_size=1 << 20, hugepages="require", **kw)
        assert isinstance(exc.value, OSError)
        assert exc.value.errno in (errno.ENOSPC, errno.ENOMEM)
        msg = str(exc.value)
        assert "hugepages='require'" in msg and "0 of the pool" in msg and "nr_hugepages" in msg
    assert testing.segments() == before   # no file, no stub left behind
    with pytest.raises(FileNotFoundError):
        shmring.attach(name)


def test_hugetlbfs_argument_must_be_hugetlbfs(name, tmp_path):
    with pytest.raises(ValueError, match="not a hugetlbfs directory"):
        shmring.create(name, 2, slot_size=8, hugepages="require", hugetlbfs=str(tmp_path))
    with pytest.raises(TypeError):
        shmring.create(name, 2, slot_size=8, hugetlbfs=3)
    assert name not in testing.segments()


# -- hugetlbfs: named rings ---------------------------------------------------------

def test_hugetlbfs_ring_is_one_named_file_reserved_at_create(name, huge):
    free = free_pages()
    old = os.umask(0o077)
    try:
        r = shmring.create(name, 3, shape=FRAME, dtype=np.uint64, hugepages="require")
    finally:
        os.umask(old)
    with r:
        i = r.info()
        path = os.path.join(huge.dir, f"shmring.{name}")
        assert (i["backing"], i["page_size"], i["path"], i["fallback"]) == ("hugetlbfs", huge.page_size, path, None)
        st = os.stat(path)
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
        assert i["size_bytes"] == st.st_size and st.st_size % huge.page_size == 0
        assert st.st_size >= 3 * 8 * FRAME[0] + 4096
        # every page is the ring's from create on: nothing left to fault in later
        assert free - free_pages() >= st.st_size // huge.page_size
        with pytest.raises(FileExistsError):
            shmring.create(name, 3, shape=FRAME, dtype=np.uint64, hugepages="require")
        with pytest.raises(FileExistsError):   # one name across /dev/shm and hugetlbfs
            shmring.create(name, 3, slot_size=8, hugepages="off")
        assert not os.path.exists(f"/dev/shm/shmring.{name}")
        assert testing.RingFile(name, path, "hugetlbfs") in testing.ring_files()
        ls = subprocess.run([sys.executable, "-m", "shmring", "ls"], capture_output=True, text=True, cwd=HERE)
        assert name in ls.stdout
        r.unlink()
        assert not os.path.exists(path) and name not in testing.segments()
        r.put(np.ones(FRAME, np.uint64))            # the mapping outlives the name
        assert r.get().sum() == FRAME[0]
    del r
    assert free_pages() == free


def test_a_shm_name_blocks_a_hugetlbfs_ring(name, huge):
    with shmring.create(name, 2, slot_size=8, hugepages="off"):
        with pytest.raises(FileExistsError):
            shmring.create(name, 2, slot_size=8, hugepages="require")
        assert not os.path.exists(os.path.join(huge.dir, f"shmring.{name}"))


def test_auto_takes_hugetlbfs_for_rings_of_a_huge_page_or_more(names, huge):
    big, small = names.new(), names.new()
    with shmring.create(big, 2, slot_size=1 << 20) as r:
        assert (r.info()["backing"], r.info()["page_size"], r.info()["fallback"]) == \
            ("hugetlbfs", huge.page_size, None)
    with shmring.create(small, 2, slot_size=64) as r:   # 8 KiB: not worth a 2 MiB page of the pool
        assert r.info()["backing"] == "shm"
        assert "smaller than one huge page" in r.info()["fallback"]
        r.unlink()
    with shmring.create(small, 2, slot_size=64, hugepages="require") as r:
        assert r.info()["backing"] == "hugetlbfs"


@pytest.mark.timeout(300)
def test_hugetlbfs_ring_cross_process_exactly_once(name, huge):
    """An unrelated producer and consumer attach by name; 1 MiB frames, capacity 4."""
    count = 600
    with shmring.create(name, 4, shape=FRAME, dtype=np.uint64, hugepages="require"):
        child = info_in_child(name)
        assert (child["backing"], child["page_size"]) == ("hugetlbfs", huge.page_size)
        assert child["path"] == os.path.join(huge.dir, f"shmring.{name}")
        worker = str(HERE / "xproc_worker.py")
        cpus = sorted(os.sched_getaffinity(0))
        consumer = subprocess.Popen([sys.executable, worker, "consume", name, str(count), "array", "0",
                                     str(cpus[-1])], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        producer = subprocess.Popen([sys.executable, worker, "produce", name, str(count), "array", "0",
                                     str(cpus[0])], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, out = finish(producer, consumer, timeout=240)
    stats = json.loads(out)
    assert stats["verified"] == stats["received"] == count
    assert stats["lost"] == stats["duplicated"] == stats["reordered"] == stats["corrupted"] == 0


def test_too_large_request_fails_at_create(name, huge):
    free = free_pages()
    before = set(os.listdir(huge.dir))
    too_many = (free + 1) * huge.page_size
    with pytest.raises(OSError) as exc:
        shmring.create(name, 1, slot_size=too_many - 8192, hugepages="require")
    assert isinstance(exc.value, shmring.ShmringError)
    assert exc.value.errno in (errno.ENOSPC, errno.ENOMEM)
    assert f"needs {free + 1} huge pages" in str(exc.value)
    assert set(os.listdir(huge.dir)) == before and free_pages() == free
    with shmring.create(name, 1, slot_size=too_many - 8192) as r:   # auto: falls back, says so
        assert r.info()["backing"] in ("shm", "thp")
        assert f"needs {free + 1} huge pages" in r.info()["fallback"]


def test_whole_pool_in_use_is_an_error_at_create_never_sigbus(names, huge):
    """A ring that takes every free page is written end to end by another process."""
    a, b = names.new(), names.new()
    free = free_pages()
    slot = 1 << 20
    cap = (free * huge.page_size - 4096) // slot
    with shmring.create(a, cap, slot_size=slot, hugepages="require") as r:
        assert free_pages() == 0
        run_python("""
            import sys, shmring
            r = shmring.attach(sys.argv[1])
            for i in range(r.capacity):
                with r.reserve() as s:
                    s[:] = i & 0xFF
            """, a, check=True)
        assert len(r) == cap and r.get()[-1] == 0 and r.get()[:1] == b"\x01"
        with pytest.raises(OSError) as exc:
            shmring.create(b, 1, slot_size=(free_pages() + 1) * huge.page_size, hugepages="require")
        assert exc.value.errno in (errno.ENOSPC, errno.ENOMEM)


def test_attach_checks_owner_and_contents_on_hugetlbfs(names, huge):
    mine, junk = names.new(), names.new()
    with shmring.create(mine, 2, slot_size=8, hugepages="require") as r:
        os.chown(r.info()["path"], 65534, 65534)
        with pytest.raises(PermissionError):
            shmring.attach(mine)
        with shmring.attach(mine, any_owner=True) as other:
            assert other.info()["backing"] == "hugetlbfs"
    fd = os.open(os.path.join(huge.dir, f"shmring.{junk}"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, huge.page_size)   # all zeros: a creator that never finished
        with pytest.raises(shmring.RingIncompatible):
            shmring.attach(junk)
    finally:
        os.close(fd)


def test_a_directory_given_by_argument_or_environment(name, huge):
    sub = os.path.join(huge.dir, f"sub-{name}")
    os.mkdir(sub)
    try:
        with shmring.create(name, 2, slot_size=64, hugetlbfs=sub, hugepages="require") as r:
            assert r.info()["path"] == os.path.join(sub, f"shmring.{name}")
            r.put(b"by argument")
            # not a mount point: attach must be told, by argument or by the variable
            with pytest.raises(FileNotFoundError):
                shmring.attach(name)
            assert info_in_child(name, hugetlbfs=sub)["backing"] == "hugetlbfs"
            env = dict(os.environ, SHMRING_HUGETLBFS=sub)
            assert info_in_child(name, env=env)["path"] == r.info()["path"]
            assert pickle.loads(pickle.dumps(r)).get() == b"by argument"
            shmring.unlink(name, hugetlbfs=sub)
        made = subprocess.run([sys.executable, "-c", textwrap.dedent("""
            import os, sys, shmring
            r = shmring.create(sys.argv[1], 2, slot_size=8, hugepages="require")
            assert r.info()["path"] == os.path.join(os.environ["SHMRING_HUGETLBFS"], "shmring." + sys.argv[1])
            r.unlink()
            """), name], env=dict(os.environ, SHMRING_HUGETLBFS=sub), capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
    finally:
        os.rmdir(sub)


# -- memfd-hugetlb: anonymous huge memory -----------------------------------------

RECEIVE_FD = """
import json, os, socket, sys, shmring
sock = socket.socket(fileno=int(sys.argv[1]))
_, fds, _, _ = socket.recv_fds(sock, 16, 1)
r = shmring.attach_fd(fds[0])
os.close(fds[0])
i = r.info()
print(json.dumps([r.name, i["backing"], r.get().decode()]))
"""


def test_memfd_ring_attach_by_name_while_its_creator_holds_it(name, huge):
    free = free_pages()
    with shmring.create(name, 4, slot_size=100, kind="mpmc", hugepages="require", hugetlbfs=False) as r:
        i = r.info()
        assert (i["backing"], i["page_size"]) == ("memfd-hugetlb", huge.page_size)
        assert "attach by name works only while this process holds it" in i["fallback"]
        assert free - free_pages() == 1
        stub = f"/dev/shm/shmring.{name}"
        assert i["path"] == stub and stat.S_IMODE(os.stat(stub).st_mode) == 0o600
        assert os.readlink(f"/proc/self/fd/{r.fileno()}") == f"/memfd:shmring.{name} (deleted)"
        assert testing.RingFile(name, stub, "memfd-hugetlb") in testing.ring_files()
        r.put(b"by name")
        out = run_python("""
            import json, sys, shmring
            r = shmring.attach(sys.argv[1])
            i = r.info()
            print(json.dumps([i["backing"], i["page_size"], r.get().decode()]))
            r.put(b"reply")
            """, name, check=True).stdout
        assert json.loads(out) == ["memfd-hugetlb", huge.page_size, "by name"]
        assert r.get() == b"reply"
        r.unlink()
        assert not os.path.exists(stub)
    del r
    assert free_pages() == free


def test_memfd_ring_passed_over_a_unix_socket(name, huge):
    with shmring.create(name, 4, slot_size=100, hugepages="require", hugetlbfs=False) as r:
        r.put(b"over SCM_RIGHTS")
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with mine, theirs:
            child = subprocess.Popen([sys.executable, "-c", RECEIVE_FD, str(theirs.fileno())],
                                     pass_fds=[theirs.fileno()], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=HERE)
            socket.send_fds(mine, [b"x"], [r.fileno()])
            [out] = finish(child, timeout=60)
        assert json.loads(out) == [name, "memfd-hugetlb", "over SCM_RIGHTS"]
        r.unlink()


def test_memfd_ring_through_the_creators_proc_fd_path(name, huge):
    with shmring.create(name, 4, slot_size=100, hugepages="require", hugetlbfs=False) as r:
        r.put(b"by /proc path")
        out = run_python("""
            import os, sys, shmring
            fd = os.open(sys.argv[1], os.O_RDWR)
            r = shmring.attach_fd(fd)
            os.close(fd)
            print(r.name, r.info()["backing"], r.get().decode())
            """, f"/proc/{os.getpid()}/fd/{r.fileno()}", check=True).stdout
        assert out.split() == [name, "memfd-hugetlb", "by", "/proc", "path"]
        r.unlink()
    with shmring.create(name, 2, slot_size=8, hugepages="off") as plain:
        with pytest.raises(ValueError, match="has a name"):
            plain.fileno()
        plain.unlink()


def test_memfd_ring_whose_creator_exited_says_so(name, huge):
    free = free_pages()
    run_python("""
        import sys, shmring
        r = shmring.create(sys.argv[1], 4, slot_size=100, hugepages="require", hugetlbfs=False)
        r.put(b"lost with its creator")
        """, name, check=True)
    with pytest.raises(shmring.PeerDied, match="no longer holds it"):
        shmring.attach(name)
    assert free_pages() == free     # the memory went with the last descriptor
    shmring.unlink(name)
    assert name not in testing.segments()


# -- transparent huge pages ---------------------------------------------------------

THP_CHILD = """
import json, subprocess, sys
import shmring
from shmring import testing

name = sys.argv[1]
out = {}
with testing.private_mounts() as mount:
    try:
        mount("tmpfs", "/dev/shm", "huge=advise")     # only this process tree sees it
    except OSError as exc:
        print(json.dumps({"skip": str(exc)}))
        sys.exit()
    with shmring.create(name, 2, slot_size=2 << 20, hugetlbfs=False) as r:
        out["creator"] = [r.info()["backing"], r.info()["page_size"]]
        r.put(b"t" * 1000)
        smaps = open("/proc/meminfo").read()
        out["ShmemHugePages"] = int(smaps.split("ShmemHugePages:")[1].split()[0])
        child = subprocess.run([sys.executable, "-c", "import sys, shmring\\n"
                                "r = shmring.attach(sys.argv[1]); i = r.info()\\n"
                                "print(i['backing'], i['page_size'], len(r.get()))", name],
                               capture_output=True, text=True, check=True)
        out["attacher"] = child.stdout.split()
        r.unlink()
    with shmring.create(name, 2, slot_size=64, hugetlbfs=False) as r:
        out["small"] = [r.info()["backing"], r.info()["fallback"]]
        r.unlink()
    with shmring.create(name, 2, slot_size=2 << 20, hugepages="off") as r:
        out["off"] = r.info()["backing"]
        r.unlink()
print(json.dumps(out))
"""


def test_thp_where_dev_shm_allows_it(name):
    if os.geteuid() != 0:
        pytest.skip("needs root: mounts a tmpfs with huge=advise over /dev/shm in a private namespace")
    try:
        out = json.loads(run_python(THP_CHILD, name, check=True).stdout)
    except AssertionError as exc:
        if "unshare(CLONE_NEWNS)" in str(exc):
            pytest.skip(f"no private mount namespace here: {exc}")
        raise
    if "skip" in out:
        pytest.skip(f"cannot mount a huge=advise tmpfs here: {out['skip']}")
    assert out["creator"] == ["thp", 2 << 20]
    assert out["ShmemHugePages"] >= 4096      # kB: the ring's 4+ MiB are huge folios
    assert out["attacher"] == ["thp", str(2 << 20), "1000"]
    assert out["small"][0] == "shm" and "smaller than one huge page" in out["small"][1]
    assert out["off"] == "shm"
