"""Every Azure test starts without the AZURE_* variables of the machine it runs on."""

from __future__ import annotations

import pytest

AZURE_VARIABLES = ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY", "AZURE_AD_TOKEN", "AZURE_API_BASE",
                   "AZURE_API_VERSION", "LLMD_TEST_AZURE_TOKEN")


@pytest.fixture(autouse=True)
def _no_azure_environment(monkeypatch):
    for name in AZURE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
