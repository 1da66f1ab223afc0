"""Metadata lives in setup.cfg; this file only adds the codec compiled by mypyc, when asked.

``SBC_MYPYC=1 python setup.py build_ext --inplace`` (what `make compiled` runs) compiles the
modules named in ``sbc.compiled.CODEC`` into one mypyc group, each ``.so`` beside its ``.py``.
``SBC_MYPYC=1 pip wheel --no-build-isolation .`` makes a compiled wheel the same way. Without
``SBC_MYPYC`` the project builds and installs as pure Python.
"""

import os
import runpy

from setuptools import setup

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

setup(ext_modules=extensions)
