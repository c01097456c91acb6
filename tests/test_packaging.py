"""Packaging: the version stamped into the compiled core, the sdist and wheel a user
gets, and the cibuildwheel configuration.

The build test makes an sdist from this tree, builds a wheel from that sdist alone
(as pip does for a user without a wheel), checks both archives' contents, has
auditwheel judge the wheel, and runs tests/wheel_smoke.py against the installed
wheel from a directory without the sources.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

import shmring
from shmring._lib import ffi, lib  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parent.parent


def run(*cmd: str | Path, cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


def import_copy(tmp_path: Path, version: str | None, keep_core: bool = True) -> subprocess.CompletedProcess[str]:
    """Import a copy of the installed package whose _version.py says `version`
    (None: unchanged), with or without its compiled core, in a fresh interpreter."""
    dst = tmp_path / "site" / "shmring"
    shutil.copytree(Path(shmring.__file__).parent, dst, ignore=shutil.ignore_patterns("__pycache__"))
    if version is not None:
        (dst / "_version.py").write_text(f'__version__ = "{version}"\n')
    if not keep_core:
        for so in dst.glob("_lib*.so"):
            so.unlink()
    env = dict(os.environ, PYTHONPATH=str(dst.parent))
    # An editable install's import hook would find the source tree's core for the copy:
    # leave only the ordinary finders, as in a plain installation.
    code = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "
            "import shmring; print(shmring.__file__)")
    return run(sys.executable, "-c", code, cwd=tmp_path, env=env)


def test_core_is_stamped_with_the_package_version() -> None:
    built = ffi.string(lib.SHMRING_BUILD_VERSION).decode()
    assert built == shmring.__version__


def test_stale_build_is_a_clear_import_error(tmp_path: Path) -> None:
    # The sources moved on (a new version) but the compiled core was not rebuilt.
    proc = import_copy(tmp_path, "9.9.9")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: shmring 9.9.9 found a compiled core built for "
                           f"{shmring.__version__}: a stale build"), proc.stderr
    assert "pip install" in last  # says how to fix it

    same = import_copy(tmp_path / "same", None)  # the copy itself imports: the check is what failed
    assert same.returncode == 0, same.stderr
    assert same.stdout.strip() == str(tmp_path / "same" / "site" / "shmring" / "__init__.py")


def test_missing_core_is_a_clear_import_error(tmp_path: Path) -> None:
    proc = import_copy(tmp_path, None, keep_core=False)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: shmring's compiled core is missing"), proc.stderr
    assert "pip install -e ." in last


def _has(module: str) -> bool:
    return run(sys.executable, "-c", f"import {module}", cwd=ROOT).returncode == 0


@pytest.mark.skipif(not _has("build"), reason="`build` is not installed (it is in the test extra)")
def test_sdist_builds_a_working_wheel(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    proc = run(sys.executable, "-m", "build", "--sdist", "--outdir", dist, ROOT, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (sdist,) = dist.glob("shmring-*.tar.gz")
    with tarfile.open(sdist) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
    for needed in ("pyproject.toml", "setup.py", "shmring/_build.py", "shmring/py.typed", "csrc/shmring.h",
                   "csrc/ring.c", "tests/conftest.py", "tests/wheel_smoke.py", "examples/frame_pipeline.py"):
        assert needed in members, f"the sdist lacks {needed}"
    assert not [m for m in members if m.endswith((".so", ".o", ".pyc"))], "build products in the sdist"

    # The wheel is built from the sdist alone, in an isolated build environment.
    proc = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", dist, sdist, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = dist.glob("shmring-*.whl")
    assert "-cp311-abi3-linux_" in wheel.name, wheel.name  # one wheel for every CPython >= 3.11
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert "shmring/py.typed" in names and "shmring/_lib.abi3.so" in names, sorted(names)
    assert not [n for n in names if n.startswith(("tests/", "csrc/", "examples/"))], sorted(names)

    if _has("auditwheel"):
        proc = run(sys.executable, "-m", "auditwheel", "show", wheel, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert 'consistent with the following platform tag: "manylinux_' in " ".join(proc.stdout.split()), \
            proc.stdout

    # Installed apart from the sources, the wheel passes cibuildwheel's test: its
    # test-command, run as cibuildwheel runs it, in a directory holding only the
    # test-sources at their paths.
    site = tmp_path / "site"
    proc = run(sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", site, wheel,
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cibw = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cibuildwheel"]
    test_cwd = tmp_path / "test_cwd"
    for src in cibw["test-sources"]:
        (test_cwd / src).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / src, test_cwd / src)
    program, *args = shlex.split(cibw["test-command"])
    assert program == "python"
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = run(sys.executable, *args, cwd=test_cwd, env=env, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first, *_, last = proc.stdout.strip().splitlines()
    assert first == f"shmring {shmring.__version__} from {site / 'shmring'}"
    assert last.startswith("smoke ok: one message from another process"), proc.stdout


@pytest.mark.skipif(shutil.which("cibuildwheel") is None and not _has("cibuildwheel"),
                    reason="cibuildwheel is not installed (it is in the test extra)")
def test_cibuildwheel_selects_cpython_manylinux_x86_64_and_aarch64() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIBW_")}
    proc = run(sys.executable, "-m", "cibuildwheel", "--platform", "linux", "--print-build-identifiers",
               cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr  # also: every option in the config is known
    ids = set(proc.stdout.split())
    assert {"cp311-manylinux_x86_64", "cp311-manylinux_aarch64"} <= ids, ids
    for ident in ids:
        version, platform = ident.split("-")
        assert version.startswith("cp3") and version[2:].isdigit() and int(version[3:]) >= 11, ident
        assert platform in ("manylinux_x86_64", "manylinux_aarch64"), ident
