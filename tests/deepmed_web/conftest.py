"""Azurite (the Azure Blob emulator from npm) on a private loopback port, for the Azure storage tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

AZURITE_BIN = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "azurite-blob"
# Azurite's documented development account (public, emulator-only key).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@pytest.fixture(scope="session")
def azurite(process_tools, tmp_path_factory) -> str:
    """Start `azurite-blob` in memory on a free port; return its connection string.
    The container `deepmed` is created once (django-storages does not create containers)."""
    binary = str(AZURITE_BIN) if AZURITE_BIN.exists() else shutil.which("azurite-blob")
    if binary is None:
        pytest.skip(
            "Azurite is not installed: run `npm install --no-save azurite` at the repo root (deploy/test.sh does)"
        )
    port = process_tools.free_port()
    process = process_tools.ManagedProcess(
        [
            binary,
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
            "--silent",
        ],
        None,
        tmp_path_factory.mktemp("azurite") / "azurite.log",
    )
    connection_string = (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT};"
    )
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(connection_string)

    def listening() -> bool:
        if process.proc.poll() is not None:
            raise AssertionError(process.log())
        try:
            service.create_container("deepmed")
            return True
        except Exception as exc:
            return type(exc).__name__ == "ResourceExistsError"

    try:
        process_tools.wait_until(listening, timeout=60, what="azurite listening")
        yield connection_string
    finally:
        process.kill()


@pytest.fixture
def azure_container(azurite):
    from azure.storage.blob import ContainerClient

    return ContainerClient.from_connection_string(azurite, "deepmed")
