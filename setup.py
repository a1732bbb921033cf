"""Build script for the native kernels.

Metadata lives in pyproject.toml; this file only declares the Cython
extensions, which are compiled from ``kernels/*.pyx`` into the
``engine.kernels`` subpackage.
"""

import glob
import os

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError as exc:  # pragma: no cover - build requirement
    raise SystemExit("building mlops-engine needs Cython>=3: pip install Cython") from exc

HERE = os.path.dirname(os.path.abspath(__file__))
# -O3 lets gcc keep the gear hash in a register and fuse shift+add into one lea.
COMPILE_ARGS = ["-O3"] if os.name != "nt" else ["/O2"]


def extensions():
    exts = []
    for pyx in sorted(glob.glob(os.path.join("kernels", "*.pyx"))):
        mod = os.path.splitext(os.path.basename(pyx))[0]
        exts.append(
            Extension(
                f"engine.kernels.{mod}",
                [pyx],
                extra_compile_args=COMPILE_ARGS,
                include_dirs=[os.path.join(HERE, "kernels")],
            )
        )
    return cythonize(
        exts,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )


setup(ext_modules=extensions())
