"""Build shmring._lib: cffi out-of-line API mode, compiling csrc/*.c into it.

setup.py names this file in cffi_modules; run it directly to build in place.
"""
import re
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
CSRC = HERE.parent / "csrc"


def version() -> str:
    """The package version, read from _version.py as text (the package is not built yet)."""
    found = re.search(r'__version__ = "([^"]+)"', (HERE / "_version.py").read_text())
    if found is None:
        raise RuntimeError(f"no __version__ = \"...\" line in {HERE / '_version.py'}")
    return found.group(1)


VERSION = version()


def declarations() -> str:
    """The cdef: csrc/shmring.h itself, less its preprocessor lines (cffi reads no
    #include or #ifndef), so the C API is written down once."""
    header = (CSRC / "shmring.h").read_text()
    return "\n".join(line for line in header.splitlines() if not line.lstrip().startswith("#"))


ffibuilder = FFI()
ffibuilder.cdef(declarations() + "\nstatic const char *const SHMRING_BUILD_VERSION;  /* stamped below */\n")
ffibuilder.set_source(
    "shmring._lib",
    '#include "shmring.h"\n'
    f'static const char *const SHMRING_BUILD_VERSION = "{VERSION}";\n',
    # Relative paths: setuptools wants sources inside the project.
    sources=sorted(str(p.relative_to(HERE.parent)) for p in CSRC.glob("*.c")),
    include_dirs=["csrc"],
    depends=sorted(str(p.relative_to(HERE.parent)) for p in CSRC.glob("*.h")),
    # Hidden: the core's functions and globals are reached directly, not
    # through the PLT and GOT (only PyInit__lib is exported).
    extra_compile_args=["-std=c11", "-O2", "-Wall", "-Wextra", "-Wshadow",
                        "-fvisibility=hidden"],
    libraries=["rt", "pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=str(HERE.parent), verbose=True)
