"""The C scanner (issue 13) as an optional extension: without a compiler, logpath runs on its
pure-Python parser and says so (``logpath doctor``); the metadata is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "logpath._scanner._scan",
            ["logpath/_scanner/module.c"],
            depends=["logpath/_scanner/scanner.c"],
            extra_compile_args=["-O2"],
            optional=True,  # a failed build leaves the pure-Python path, never a failed install
        )
    ]
)
