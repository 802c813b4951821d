"""Shared fixtures for the ml_core tests (synthetic data only; no shared dataset, no DB)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_core.testing import make_tiny_package


@pytest.fixture(scope="session")
def tiny_package(tmp_path_factory) -> Path:
    return make_tiny_package(tmp_path_factory.mktemp("pkg") / "cxr-tiny")


@pytest.fixture(scope="session")
def tiny_package_ood(tmp_path_factory) -> Path:
    return make_tiny_package(tmp_path_factory.mktemp("pkg-ood") / "cxr-tiny-ood", with_ood=True)


@pytest.fixture(scope="session")
def predictor(tiny_package):
    from ml_core.serve import load_predictor

    return load_predictor(tiny_package)
