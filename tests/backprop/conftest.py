"""The maths tests of the engine run on both training kernels (``kernel`` fixture). numba is in
the ``dev`` extra, so the compiled kernel is skipped only where it was left out on purpose."""

from __future__ import annotations

import pytest

from backprop import kernels

KERNELS = ["numpy", pytest.param("compiled", marks=pytest.mark.skipif(
    not kernels.available(), reason="numba is not installed (pip install -e '.[fast]')"))]


@pytest.fixture(params=KERNELS)
def kernel(request: pytest.FixtureRequest) -> str:
    return request.param
