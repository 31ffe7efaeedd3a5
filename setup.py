"""Build script for the optional compiled kernels; the project metadata lives in pyproject.toml.

``pip install .`` (and ``python -m build``, cibuildwheel) compiles ``provaudit/text/_kernels_module.c``
(which includes ``_kernels.c``) into the extension module ``provaudit.text._kernels``. The
extension is optional: when no working C compiler is found (or it fails, e.g. ``CC=false``),
setuptools prints a warning and the install goes on without it, and provaudit runs its numpy
twins of the kernels (same results, slower). MSVC lacks ``__uint128_t``, so Windows builds
take that path too. Nothing is compiled at run time.
"""

import sys

from setuptools import Extension, setup

COMPILE_ARGS = [] if sys.platform == "win32" else ["-O3", "-std=gnu11"]

setup(
    ext_modules=[
        Extension(
            "provaudit.text._kernels",
            sources=["provaudit/text/_kernels_module.c"],
            depends=["provaudit/text/_kernels.c"],
            extra_compile_args=COMPILE_ARGS,
            define_macros=[("Py_LIMITED_API", "0x030B0000")],
            py_limited_api=True,
            optional=True,
        )
    ],
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
