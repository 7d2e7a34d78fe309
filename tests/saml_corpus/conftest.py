"""Fixtures of the corpus tests: the broker's key, an SP key pair and the session secret's environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.devstack.dev_saml_idp import write_key_and_cert
from broker.issuers.signing import generate_key_file
from tests.saml_corpus.corpus import SECRET, SECRET_ENV


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The broker's own signing key and an SP key pair (Keycloak's metadata asks for signed AuthnRequests)."""
    base = tmp_path_factory.mktemp("corpus-keys")
    generate_key_file(base / "k1.pem", bits=2048)
    sp_key, sp_cert = write_key_and_cert(base, "sp", "broker.example.com")
    return {"broker": base / "k1.pem", "sp_key": sp_key, "sp_cert": sp_cert}


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
