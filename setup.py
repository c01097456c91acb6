from setuptools import setup

# Everything else is in pyproject.toml; cffi's hook needs setup.py.
setup(cffi_modules=["shmring/_build.py:ffibuilder"])
