"""Metadata lives in setup.cfg; this file adds what a declarative config cannot say.

- The twistd plugin: ``twisted/plugins/sbc_plugin.py`` must be installed, yet ``twisted/plugins``
  must have no ``__init__.py`` (it is Twisted's namespace for plugins), so ``find:`` cannot see it.
  It is named here as a package of its own.
- The example config: the repository's ``etc/`` is copied into the built package as
  ``sbc/examples/etc``, which ``sbc-ctl init`` reads (`sbc.ops.starter`); one copy to keep.
- The codec compiled by mypyc, when asked: ``SBC_MYPYC=1 python setup.py build_ext --inplace``
  (what `make compiled` runs) compiles the modules named in ``sbc.compiled.CODEC`` into one mypyc
  group, each ``.so`` beside its ``.py``. ``SBC_MYPYC=1 pip wheel --no-build-isolation .`` makes a
  compiled wheel the same way. Without ``SBC_MYPYC`` the project builds and installs as pure Python.
"""

import os
import runpy
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildWithExamples(build_py):  # type: ignore[misc]
    """Build the packages, then copy ``etc/`` (without caches) into ``sbc/examples/etc``."""

    def run(self) -> None:
        super().run()
        source = HERE / "etc"
        target = Path(self.build_lib) / "sbc" / "examples" / "etc"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


extensions = []
if os.environ.get("SBC_MYPYC"):
    from mypyc.build import mypycify

    # Read the list without importing sbc, whose import refuses a stale build (the one we replace).
    codec = runpy.run_path("sbc/compiled.py")["CODEC"]
    extensions = mypycify(
        [f"sbc/sip/{name}.py" for name in codec],
        group_name="sbc.sip.codec",
        target_dir="build/mypyc",
    )

setup(
    packages=[*find_packages(include=["sbc", "sbc.*"]), "twisted.plugins"],
    cmdclass={"build_py": BuildWithExamples},
    ext_modules=extensions,
)
