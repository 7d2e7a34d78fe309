"""The whole embedded stack on loopback: strict local AWS, the development OIDC provider and the broker.

Used by `sts-broker demo` and by the flow tests. The broker's config is written as files into a work
directory, so the demo runs exactly what a deployment would: broker.yaml, idp_configs/, rules.yaml, a key.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import yaml

from broker.config import load_settings
from broker.connectors.saml import SamlConnector
from broker.connectors.saml_config import SamlIdpConfig
from broker.connectors.saml_descriptor import SsoBinding
from broker.devstack.demo_fleet import register_fleet
from broker.devstack.dev_idp import run_dev_idp
from broker.devstack.dev_saml_idp import DevSamlIdp, run_dev_saml_idp, saml_idp_config
from broker.devstack.iam_paths import register_broker_user, register_spoke, spoke_account
from broker.devstack.local_aws import LocalAws, run_local_aws
from broker.devstack.servers import LOOPBACK, asgi_server, free_port
from broker.issuers.saml_idp import idp_metadata, load_saml_keys
from broker.issuers.signing import generate_key_file
from broker.settings import Settings
from broker.web.app import create_app

DEMO_RULES = Path(__file__).with_name("demo_rules.yaml")
AUDIENCE = "sts.amazonaws.com"
DEMO_ROLES = {"DemoAdmin": 3600 * 4, "DemoDeveloper": 3600 * 8}
SECRET_ENV = "BROKER_SESSION_SECRET"
SAML_IDP_ID = "devsaml"
SAML_POST_IDP_ID = "devsamlpost"  # the same pysaml2 IdP, always through the HTTP-POST binding
SAML_PROVIDER_NAME = "sts-broker"  # the IAM SAML provider holding the broker's /saml/idp/metadata
SAML_ROLES = {"DemoSaml": 3600 * 4}
SAML_RECIPIENT = "https://signin.aws.amazon.com/saml"
# A role chain: DemoAudit in the spoke account (iam_paths.spoke_account) trusts the hub role DemoDeveloper.
HUB_ROLE, SPOKE_ROLE = "DemoDeveloper", "DemoAudit"


@dataclass(frozen=True)
class DevStack:
    broker_url: str
    idp_issuer: str
    aws: LocalAws
    workdir: Path
    settings: Settings
    audit_path: Path
    saml_idp_url: str = ""  # the pysaml2 IdP (idp ids SAML_IDP_ID and SAML_POST_IDP_ID)
    saml_idp: DevSamlIdp | None = None
    saml_binding: SsoBinding = "redirect"  # how SAML_IDP_ID's AuthnRequest travels


def aws_client(aws: LocalAws, service: str, **creds: str) -> Any:
    creds = creds or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return boto3.client(service, endpoint_url=aws.endpoint_url, region_name="us-east-1", **creds)


def trust_policy(provider_arn: str, provider_host: str, sub_pattern: str = "dev:*") -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": provider_arn},
        "Action": ["sts:AssumeRoleWithWebIdentity", "sts:TagSession"],
        "Condition": {"StringEquals": {f"{provider_host}:aud": AUDIENCE},
                      "StringLike": {f"{provider_host}:sub": sub_pattern}},
    }]})


def register_broker_in_iam(aws: LocalAws, broker_url: str) -> str:
    """What a platform team does in IAM: the broker as an OIDC provider, and roles that trust it."""
    iam = aws_client(aws, "iam")
    provider_arn: str = iam.create_open_id_connect_provider(
        Url=broker_url, ClientIDList=[AUDIENCE], ThumbprintList=["0" * 40]
    )["OpenIDConnectProviderArn"]
    host = provider_arn.split(":oidc-provider/", 1)[1]
    for name, max_seconds in DEMO_ROLES.items():
        # Subjects from the OIDC dev IdP and from the SAML ones (the broker mints `{idp}:{subject}`).
        subjects = json.dumps(["dev:*", f"{SAML_IDP_ID}:*", f"{SAML_POST_IDP_ID}:*"])
        policy = trust_policy(provider_arn, host).replace('"dev:*"', subjects)
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=policy,
                        MaxSessionDuration=max_seconds)
    return provider_arn


def saml_trust_policy(provider_arn: str, recipient: str = SAML_RECIPIENT) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": provider_arn},
        "Action": ["sts:AssumeRoleWithSAML", "sts:TagSession", "sts:SetSourceIdentity"],
        "Condition": {"StringEquals": {"SAML:aud": recipient}},
    }]})


def register_broker_saml_in_iam(aws: LocalAws, settings: Settings) -> str:
    """The broker as an IAM SAML provider (its IdP metadata, as /saml/idp/metadata serves it), and roles
    that trust it."""
    keys, _ = load_saml_keys(settings.keys)
    iam = aws_client(aws, "iam")
    provider_arn: str = iam.create_saml_provider(
        Name=SAML_PROVIDER_NAME, SAMLMetadataDocument=idp_metadata(settings.public_url, keys).decode()
    )["SAMLProviderArn"]
    for name, max_seconds in SAML_ROLES.items():
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=saml_trust_policy(provider_arn),
                        MaxSessionDuration=max_seconds)
    return provider_arn


def write_config(workdir: Path, broker_url: str, issuer: str, aws: LocalAws, rules: Path,
                 extra_idps: Mapping[str, dict[str, Any]], overrides: Mapping[str, Any],
                 own_credentials: Mapping[str, str] | None = None) -> Path:
    (workdir / "idp_configs").mkdir(parents=True, exist_ok=True)
    key = workdir / "keys" / "demo.pem"
    if not key.exists():
        generate_key_file(key, bits=2048)
    shutil.copyfile(rules, workdir / "rules.yaml")
    (workdir / "idp_configs" / "dev.yaml").write_text(yaml.safe_dump({
        "id": "dev", "type": "oidc", "name": "Development IdP (oidc-provider-mock)", "issuer": issuer,
        "client_id": "sts-broker-demo", "client_secret": "${DEV_IDP_CLIENT_SECRET}",
        "scopes": ["openid", "email", "profile"],
        "claims": {"email": "email", "groups": "groups"}, "mfa": {"amr": ["mfa"]},
    }, sort_keys=False))
    for name, idp in extra_idps.items():
        (workdir / "idp_configs" / f"{name}.yaml").write_text(yaml.safe_dump(idp))
    config = workdir / "broker.yaml"
    config.write_text(yaml.safe_dump({
        "public_url": broker_url,
        "session": {"secret": "${" + SECRET_ENV + "}", "lifetime": "8h"},
        "store": {"url": "memory://"},
        "keys": [{"kid": "demo", "file": "keys/demo.pem", "active": True}],
        "aws": {"region": "us-east-1", "sts_endpoint_url": aws.endpoint_url,
                "federation_url": aws.federation_url, "web_identity_audience": AUDIENCE, **(own_credentials or {})},
        "idp_configs": "idp_configs", "rules": "rules.yaml", "audit": {"path": "audit.log"},
        **overrides,
    }, sort_keys=False))
    return config


BrokerServer = Callable[[Path, Settings, int], AbstractContextManager[object]]


def serve_in_thread(config: Path, settings: Settings, port: int) -> AbstractContextManager[object]:
    """The default way run_stack runs the broker: this process, uvicorn in a thread."""
    return asgi_server(create_app(settings), port)


@contextmanager
def run_stack(workdir: Path, *, broker_port: int = 0, idp_port: int = 0, aws_port: int = 0, saml_port: int = 0,
              rules: Path = DEMO_RULES, extra_idps: Mapping[str, dict[str, Any]] | None = None,
              overrides: Mapping[str, Any] | None = None, account_id: str = "123456789012",
              serve_broker: BrokerServer = serve_in_thread, saml_binding: SsoBinding = "redirect",
              demo_fleet: bool | None = None) -> Iterator[DevStack]:
    """`extra_idps` adds IdP files and `overrides` top-level broker.yaml keys (tests use both); `account_id`
    keeps a second stack's IAM apart from the first's in moto's process-wide state; `serve_broker` runs the
    broker (tests run `sts-broker serve` in a process of its own with it); `saml_binding` "post" makes the
    SAML IdP publish only HTTP-POST (as OneLogin and Google's SAML IdP do); `demo_fleet` (default: with the
    demo rules) creates the rules' many assume_role roles in other accounts (demo_fleet.py)."""
    os.environ.setdefault(SECRET_ENV, secrets.token_urlsafe(48))
    os.environ.setdefault("DEV_IDP_CLIENT_SECRET", secrets.token_urlsafe(24))
    broker_port = broker_port or free_port()
    broker_url = f"http://{LOOPBACK}:{broker_port}"
    with ExitStack() as stack:
        aws = stack.enter_context(run_local_aws(port=aws_port, account_id=account_id))
        issuer = stack.enter_context(run_dev_idp(idp_port))
        saml_idp, saml_configs = dev_saml_idp(workdir, broker_url, saml_port or free_port(), saml_binding)
        saml_url = stack.enter_context(run_dev_saml_idp(saml_idp, int(saml_idp.url.rsplit(":", 1)[1])))
        register_broker_in_iam(aws, broker_url)
        workdir.mkdir(parents=True, exist_ok=True)
        own = register_broker_user(aws, workdir)  # the broker's own credentials (assume_role, federation_token)
        register_spoke(aws, f"arn:aws:iam::{account_id}:role/{HUB_ROLE}", spoke_account(account_id), SPOKE_ROLE)
        if demo_fleet if demo_fleet is not None else rules == DEMO_RULES:
            register_fleet(aws, rules, spoke_account(account_id))
        config = write_config(workdir, broker_url, issuer, aws, rules,
                              {**saml_configs, **(extra_idps or {})}, overrides or {}, own)
        settings = load_settings(config)
        register_broker_saml_in_iam(aws, settings)
        stack.enter_context(serve_broker(config, settings, broker_port))
        yield DevStack(broker_url, issuer, aws, workdir, settings, Path(settings.audit.path), saml_url, saml_idp,
                       saml_binding)


def dev_saml_idp(workdir: Path, broker_url: str, port: int, binding: SsoBinding = "redirect"
                 ) -> tuple[DevSamlIdp, dict[str, dict[str, Any]]]:
    """The pysaml2 IdP and the broker's configs for it; the IdP trusts the broker's SP metadata.

    SAML_IDP_ID: by default spelled out inline (HTTP-Redirect); with binding "post" the IdP publishes only
    HTTP-POST and the broker reads its metadata file, so the binding comes from the metadata as with a
    POST-only IdP in the field. SAML_POST_IDP_ID: the same IdP from its metadata with `sso_binding: post`,
    so the self-test signs in through both bindings."""
    idp = DevSamlIdp(f"http://{LOOPBACK}:{port}", workdir / "saml-idp",
                     bindings=("post",) if binding == "post" else ("redirect", "post"))
    metadata = workdir / "saml-idp" / "metadata.xml"
    metadata.write_text(idp.metadata_xml())
    inline = saml_idp_config(SAML_IDP_ID, idp.url, idp.certificate)
    from_metadata = {k: v for k, v in inline.items() if k not in {"entity_id", "sso_url", "certificates"}}
    configs = {
        SAML_IDP_ID: inline if binding == "redirect" else {**from_metadata, "metadata_file": str(metadata)},
        SAML_POST_IDP_ID: {**from_metadata, "id": SAML_POST_IDP_ID, "name": f"{idp.name} via HTTP-POST",
                           "metadata_file": str(metadata), "sso_binding": "post"},
    }
    idp.trust_sp([SamlConnector(SamlIdpConfig.model_validate(c), broker_url, None).sp_metadata()
                  for c in configs.values()])
    return idp, configs
