"""Study-test fixtures (studies at each point of their life are in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def stored_files(_isolated_media):
    """stored_files() -> every file now in this test's storage folder."""
    return lambda: sorted(p for p in _isolated_media.rglob("*") if p.is_file()) if _isolated_media.exists() else []
