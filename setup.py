import sys

from cffi import recompiler
from setuptools import setup

# cffi compiles shmring._lib against CPython's stable ABI where it can (it names the
# module _lib.abi3.so): tag the wheel cp311-abi3 so that one wheel serves every
# CPython >= 3.11.  Debug and free-threaded builds have no stable ABI; cffi then makes
# a version-specific module, and the wheel keeps its version-specific tag.
abi3 = recompiler.USE_LIMITED_API and not hasattr(sys, "gettotalrefcount")

# Everything else is in pyproject.toml; cffi's hook needs setup.py.
setup(
    cffi_modules=["shmring/_build.py:ffibuilder"],
    options={"bdist_wheel": {"py_limited_api": "cp311"}} if abi3 else {},
)
