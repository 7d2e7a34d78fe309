"""One table of IdP kinds (broker/logins/kinds.py) is the source of both the config's `type` dispatch and the
registry's logins: registering a kind there is all config loading and the registry need."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from typing import Literal

import httpx
import pytest
from pydantic import ValidationError

from broker import urls
from broker.audit import AuditLog
from broker.config import parse_idp
from broker.connectors.xml_workers import XmlWorkers
from broker.identity import Identity
from broker.logins import kinds
from broker.logins.base import LoginStart, Parts
from broker.logins.kinds import KINDS, Kind
from broker.logins.registry import Registry
from broker.settings import Model
from broker.store import MemoryStore


class FakeIdpConfig(Model):
    id: str
    type: Literal["fake"]
    name: str

    def claims_provided(self) -> set[str]:
        return {"sub"}


class FakeLogin:
    finish_template = urls.OIDC_CALLBACK

    def __init__(self, config: FakeIdpConfig, parts: Parts) -> None:
        self.id, self.name, self.parts = config.id, config.name, parts

    async def start(self, return_to: str) -> LoginStart:
        raise NotImplementedError

    async def finish(self, params: Mapping[str, str], browser_state: str | None) -> tuple[Identity, str]:
        raise NotImplementedError


def test_the_config_union_is_the_table() -> None:
    with pytest.raises(ValidationError) as refused:
        parse_idp({"id": "x", "type": "nope", "name": "X"})
    expected = ", ".join(f"'{name}'" for name in KINDS)
    assert f"expected tags: {expected}" in str(refused.value)
    assert list(KINDS) == ["oidc", "token", "saml"]
    for name, kind in KINDS.items():
        assert kind.type == name and kind.model.model_fields["type"].is_required()


@pytest.mark.anyio
async def test_one_entry_registers_a_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(kinds.KINDS, "fake", Kind(FakeIdpConfig, FakeLogin))
    config = parse_idp({"id": "f1", "type": "fake", "name": "Fake"})
    assert isinstance(config, FakeIdpConfig)
    async with httpx.AsyncClient() as http:
        parts = Parts("https://broker.example.com", http, MemoryStore(), AuditLog(), XmlWorkers())
        registry = Registry({"f1": config}, parts)
        login = registry.login("f1")
        assert isinstance(login, FakeLogin) and login.parts is parts
        assert registry.browser_idps() == [("f1", "Fake")] and not registry.tokens


def test_reading_config_loads_no_login_library() -> None:
    """`sts-broker rules lint` reads IdP configs through the table: it does not pay for the logins' libraries."""
    heavy = ("httpx", "authlib", "joserfc", "onelogin", "xmlsec", "broker.logins.oidc", "broker.logins.saml")
    code = f"import sys, broker.cli_rules; print([m for m in {heavy!r} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert loaded.stdout.strip() == "[]"
