"""Shared fixtures for the ml_core tests (synthetic data only; no shared dataset, no DB).
`tiny_package` is the root conftest's."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_core.testing import FAST_PACKAGE_SETTINGS, make_tiny_imagefolder, make_tiny_package, tiny_train_config


@pytest.fixture(scope="session")
def tiny_package_ood(tmp_path_factory) -> Path:
    return make_tiny_package(tmp_path_factory.mktemp("pkg-ood") / "cxr-tiny-ood", with_ood=True)


@pytest.fixture(scope="session")
def predictor(tiny_package):
    from ml_core.serve import load_predictor

    return load_predictor(tiny_package)


# --- a tiny model really trained (cxr_tiny, 32 px) on a synthetic, learnable ImageFolder ---


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    return make_tiny_imagefolder(tmp_path_factory.mktemp("cxr") / "data", size=64)


@pytest.fixture(scope="session")
def trained(tiny_data, tmp_path_factory):
    from ml_core.pipeline import PackageConfig
    from ml_core.train import train

    out = tmp_path_factory.mktemp("run")
    steps = []
    result = train(
        tiny_train_config(tiny_data, out),
        progress=lambda e, s, m: steps.append((e, s, m["phase"])),
        package=PackageConfig(name="cxr-tiny-trained", format="fp32", **FAST_PACKAGE_SETTINGS),
    )
    return result, steps
