"""Shared fixtures of the mixq Python tests: paths to the reference data and the mixq-search program."""
import os

import pytest

SOURCE_DIR = os.environ.get("MIXQ_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
DATA_DIR = os.environ.get("MIXQ_SHARED_DATA_DIR", os.path.join(SOURCE_DIR, "..", "shared", "data"))


@pytest.fixture
def data_path():
    def path(name):
        p = os.path.join(DATA_DIR, name)
        if not os.path.exists(p):
            pytest.fail(f"reference data {p} is missing")
        return p

    return path
