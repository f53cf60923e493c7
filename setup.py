"""The hub's C extensions; everything else about the build is in pyproject.toml.

``liaison.hub._geo`` (services/hub/_geo.c, issue #16) checks GeoJSON coordinates on the raw
JSON bytes: plain C against the CPython API, built by gcc with Python's headers (``make
install`` sees to both). Declared here rather than in ``[tool.setuptools] ext-modules``, which
setuptools still calls experimental. Optional: an install without a compiler still works, the
hub then using the contract's decoder alone (services/hub/geo.py logs which;
tests/hub/test_geo.py requires the compiled one in this repository's install).

``liaison.hub._buffers`` (services/hub/_buffers.c) gives the hub's transport a bytes object to
receive a large message body into. Optional too: without it the transport receives into a
buffer of its own and the body is copied once more (tests/hub/test_transport.py runs both).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "liaison.hub._geo",
            sources=["services/hub/_geo.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
        Extension(
            "liaison.hub._buffers",
            sources=["services/hub/_buffers.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
    ]
)
