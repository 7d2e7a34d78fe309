"""The one table of IdP kinds: each config `type` with its config model and, for a browser login kind, how
its RedirectLogin is built. config.py validates IdP files against the models it names (the `type`
discriminated union is built from it); logins/registry.py builds each IdP's login from it. A new IdP kind
is its modules (connector, config model, login with `build`) and one entry in KINDS, nothing else.

Config loading imports this table (`sts-broker rules lint` too), so a login's libraries (httpx, authlib,
python3-saml, xmlsec: ~0.35 s) load only when a login is built: each kind's builder imports its login
module then."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel

from broker.connectors.oidc_config import OidcIdpConfig
from broker.connectors.saml_config import SamlIdpConfig
from broker.connectors.token_config import TokenIdpConfig
from broker.logins.base import Parts, RedirectLogin

# Called only with a config of the kind's own model (the registry and config.py dispatch on `type`).
LoginBuilder = Callable[[Any, Parts], RedirectLogin]
# A config whose files are resolved with the function given (relative to the IdP file), and each (key, path)
# that must exist.
FileResolver = Callable[[Any, Callable[[Path], Path]], tuple[Any, list[tuple[str, Path]]]]


@dataclass(frozen=True)
class Kind:
    model: type[BaseModel]
    login: LoginBuilder | None = None  # None: a token verifier kind (the token exchange's TokenConnectors)
    files: FileResolver | None = None  # a kind whose config names files (keys, metadata)

    @property
    def type(self) -> str:
        """The model's `type: Literal[...]` value: the key in IdP files."""
        [value] = get_args(self.model.model_fields["type"].annotation)
        return str(value)


def _table(*kinds: Kind) -> dict[str, Kind]:
    for kind in kinds:  # what settings.IdpModel promises of every IdP model
        missing = {"id", "type", "name"} - set(kind.model.model_fields)
        missing |= set() if callable(getattr(kind.model, "claims_provided", None)) else {"claims_provided()"}
        if missing:
            raise TypeError(f"{kind.model.__name__} lacks {sorted(missing)}")
    return {kind.type: kind for kind in kinds}


def _oidc(config: OidcIdpConfig, parts: Parts) -> RedirectLogin:
    from broker.logins import oidc

    return oidc.build(config, parts)


def _saml(config: SamlIdpConfig, parts: Parts) -> RedirectLogin:
    from broker.logins import saml

    return saml.build(config, parts)


KINDS = _table(
    Kind(OidcIdpConfig, _oidc, OidcIdpConfig.with_files),
    Kind(TokenIdpConfig),
    Kind(SamlIdpConfig, _saml, SamlIdpConfig.with_files),
)
