"""Fixtures of the backend tests: the engine under test, and the sample data loaded into it."""

from __future__ import annotations

import pytest
from backend_support import ENGINES, LOADERS, need


@pytest.fixture(scope="module", params=ENGINES)
def engine_name(request):
    need(request.param)
    return request.param


@pytest.fixture(scope="module")
def load(engine_name):
    """``load(tables, timezone=None) -> (bindings, engine)`` for the engine under test."""
    return LOADERS[engine_name]


@pytest.fixture(scope="module")
def sample():
    from metrictree.sample import sample_data

    return sample_data()


@pytest.fixture(scope="module")
def on_engine(load, sample):
    """The sample data in the engine under test: ``(bindings, engine)``."""
    return load(sample)
