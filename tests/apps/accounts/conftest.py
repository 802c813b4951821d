from __future__ import annotations

import pytest


@pytest.fixture
def new_disclaimer_version(monkeypatch):
    """new_disclaimer_version() publishes disclaimer version "2" for the rest of the test."""
    from apps.accounts import disclaimer

    def publish() -> None:
        text = disclaimer.Disclaimer(version="2", title="Updated disclaimer", paragraphs=("New wording.",))
        monkeypatch.setitem(disclaimer.DISCLAIMERS, "2", text)
        monkeypatch.setattr(disclaimer, "CURRENT_VERSION", "2")

    return publish
