"""A dev stack in a suite's own moto account: the demo rules rewritten for it, a private Redis as the store, and
/metrics scraped over HTTP into samples a test compares before and after a flow."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from broker.audit import AuditLog
from broker.devstack.redis_server import RedisServer
from broker.devstack.servers import LOOPBACK, asgi_server, free_port
from broker.devstack.stack import DEMO_RULES, DevStack, aws_client, run_stack
from broker.web.app import create_app
from broker.web.proxy import parse_trusted

DEMO_ACCOUNT = "123456789012"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def own_rules(path: Path, account: str, extra_admin_grants: list[dict[str, Any]] | None = None) -> Path:
    """The demo rules with the demo's accounts replaced by `account` and its spoke (digits reversed)."""
    text = DEMO_RULES.read_text().replace(DEMO_ACCOUNT, account).replace(DEMO_ACCOUNT[::-1], account[::-1])
    rules = yaml.safe_load(text)
    rules["rules"][0]["grant"] += extra_admin_grants or []
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


@contextmanager
def own_stack(workdir: Path, account: str, redis: RedisServer, *, untrusted_role: str = "Untrusted",
              overrides: Mapping[str, Any] | None = None,
              extra_idps: Mapping[str, dict[str, Any]] | None = None) -> Iterator[DevStack]:
    """run_stack in `account` on `redis`, with a role (granted to alice) whose trust policy trusts another
    provider: STS refuses it with AccessDenied."""
    workdir.mkdir(parents=True, exist_ok=True)
    rules = own_rules(workdir / "own-rules.yaml", account,
                      [{"role": f"arn:aws:iam::{account}:role/{untrusted_role}"}])
    with run_stack(workdir / "stack", rules=rules, account_id=account, extra_idps=extra_idps, overrides={
            "store": {"url": redis.url}, "rate_limits": {"login_starts": 100000}, **(overrides or {})}) as stack:
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
            "Principal": {"Federated": f"arn:aws:iam::{account}:oidc-provider/other.example.com"}}]}
        aws_client(stack.aws, "iam").create_role(RoleName=untrusted_role, AssumeRolePolicyDocument=json.dumps(trust))
        yield stack


@contextmanager
def variant(stack: DevStack, *, aws: Mapping[str, Any] | None = None, trusted: str = "", port: int = 0,
            replica: bool = False, **updates: Any) -> Iterator[str]:
    """The stack's broker settings with changes, served by another broker on its own port (`trusted`: its
    --forwarded-allow-ips), writing to the stack's audit log. `replica`: it keeps the stack's public URL (the
    issuer IAM trusts), so with the stack's shared store it serves the sessions signed in at the stack."""
    port = port or free_port()
    url = f"http://{LOOPBACK}:{port}"
    settings = stack.settings.model_copy(update={
        "public_url": stack.broker_url if replica else url,
        "aws": stack.settings.aws.model_copy(update=dict(aws or {})), **updates})
    app = create_app(settings, audit=AuditLog(str(stack.audit_path)),
                     trusted_proxies=parse_trusted(trusted) if trusted else ())
    with asgi_server(app, port):
        yield url


def audit_events(stack: DevStack) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stack.audit_path.read_text().splitlines()]


def scrape(url: str) -> Samples:
    """GET /metrics over HTTP, parsed by prometheus_client's own parser."""
    response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200, response.text[:200]
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)
