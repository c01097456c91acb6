"""Other local users: with default permissions they can neither read, attach to,
remove nor squat a ring's name (README promise 4).

Run as root: a throwaway system user is made for the module (useradd) and
removed afterwards, also on failure.  The other user's side runs in a forked
child that drops to that user (setgid/setuid), so it needs no file access to
the code under test.  Skipped when not root or without useradd.
"""
from __future__ import annotations

import os
import pickle
import pwd
import shutil
import stat
import subprocess
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import shmring

from conftest import shm_path

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("useradd") is None or shutil.which("userdel") is None,
    reason="needs root and useradd/userdel to make a second user",
)


@pytest.fixture(scope="module")
def other() -> Iterator[pwd.struct_passwd]:
    """A throwaway user with no home and no login, removed at the end."""
    user = f"shmr{os.getpid() % 100000}"
    # one left by a run that was killed before its clean-up (same pid, later boot)
    subprocess.run(["userdel", user], check=False, capture_output=True, timeout=60)
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                   check=True, capture_output=True, timeout=60)
    try:
        yield pwd.getpwnam(user)
    finally:
        subprocess.run(["userdel", user], check=False, capture_output=True, timeout=60)
        with pytest.raises(KeyError):
            pwd.getpwnam(user)


def as_user(who: pwd.struct_passwd, fn: Callable[[], Any]) -> Any:
    """Run fn in a forked child as another user and return its result; an exception
    in the child fails the test here with the child's traceback."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to the other user, run, report, never return
        code = 0
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(who.pw_gid)
            os.setuid(who.pw_uid)
            try:
                out = ("ok", fn())
            except BaseException:  # noqa: BLE001 - the parent reports it
                out = ("raised", traceback.format_exc())
            with os.fdopen(w, "wb") as f:
                pickle.dump(out, f)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and data, "the child as the other user failed"
    tag, value = pickle.loads(data)
    if tag == "raised":
        raise AssertionError(f"the child as the other user raised:\n{value}")
    return value


def outcome(fn: Callable[[], Any]) -> Callable[[], tuple[str, bool, str]]:
    """Wrap fn to report (exception class name, is a ShmringError, message) or ('ok', ...)."""
    def run() -> tuple[str, bool, str]:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001
            return (type(exc).__name__, isinstance(exc, shmring.ShmringError), str(exc))
        return ("ok", False, "")
    return run


def denied(result: tuple[str, bool, str]) -> None:
    name, ours, msg = result
    assert name == "RingPermissionError" and ours, result


def test_default_mode_is_0600_and_exact(name, names):
    with shmring.create(name, 2, slot_size=8):
        st = os.stat(shm_path(name))
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
    other = names.new()
    old = os.umask(0o077)   # the mode asked for is what the file gets, umask or not
    try:
        with shmring.create(other, 2, slot_size=8, mode=0o644):
            assert stat.S_IMODE(os.stat(shm_path(other)).st_mode) == 0o644
    finally:
        os.umask(old)


def test_other_user_cannot_attach_read_or_remove(name, other):
    with shmring.create(name, 2, slot_size=8) as r:
        r.put(b"secret")
        denied(as_user(other, outcome(lambda: shmring.attach(name))))
        denied(as_user(other, outcome(lambda: shmring.attach(name, any_owner=True))))
        denied(as_user(other, outcome(lambda: shmring.unlink(name))))

        def read_file() -> None:
            with open(shm_path(name), "rb") as f:
                f.read()
        assert as_user(other, outcome(read_file))[0] == "PermissionError"
        assert r.get() == b"secret"   # untouched
    assert os.path.exists(shm_path(name))


def test_other_user_needs_consent_even_when_mode_allows(name, other):
    """A ring made world-writable on purpose: the other user still has to opt in."""
    with shmring.create(name, 2, slot_size=8, mode=0o666) as r:
        denied(as_user(other, outcome(lambda: shmring.attach(name))))

        def opt_in() -> bytes:
            with shmring.attach(name, any_owner=True) as theirs:
                theirs.put(b"hello")
            return b"done"
        assert as_user(other, opt_in) == b"done"
        assert r.get() == b"hello"


def test_other_user_cannot_squat_a_name(name, other):
    """A name another user made first: our create fails (O_EXCL), and our attach
    refuses their segment unless we opt in with any_owner=True."""
    def squat() -> None:
        r = shmring.create(name, 2, slot_size=8, mode=0o666)
        r.put(b"bait")
        r.close()
    as_user(other, squat)
    try:
        assert os.stat(shm_path(name)).st_uid == other.pw_uid
        with pytest.raises(FileExistsError) as e:
            shmring.create(name, 2, slot_size=8)
        assert isinstance(e.value, shmring.ShmringError)
        with pytest.raises(PermissionError) as e2:
            shmring.attach(name)
        assert isinstance(e2.value, shmring.ShmringError)
        with shmring.attach(name, any_owner=True) as theirs:   # a deliberate opt-in
            assert theirs.get() == b"bait"
    finally:
        shmring.unlink(name)   # root may remove it from the sticky /dev/shm
