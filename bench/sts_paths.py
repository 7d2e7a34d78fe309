"""A chained issuance against a direct one, in the same run (`make bench` runs it).

    python -m bench.sts_paths

- direct: the hub role for a person, as a browser asks for it (never from the cache): the web-identity token
  minted and signed, AssumeRoleWithWebIdentity.
- chained: the spoke role reached from that hub (`via: assume_role`, `from:`): the hub session from the
  credential cache, then AssumeRole signed with SigV4 (botocore's signer) by the hub session.
Target: chained within 1.2x of direct (time per issuance). For reference, also AssumeRole signed with the
broker's own credentials (no hub): what the chain adds to the same call is the hub's cache lookup and its
audit event. All through the real Issuance, issuers and the event-loop STS transport (STS_BENCH_TRANSPORT=boto3
for the boto3 one), against the stub STS in a process of its own that answers at once (so the broker's own
work is what differs), on uvloop as `sts-broker serve` runs. Interleaved rounds, best of each, so a busy
neighbour hurts both alike. Loopback only.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import uvloop

from bench.token_exchange import process, wait_for
from broker.audit import AuditLog
from broker.devstack.servers import LOOPBACK, free_port
from broker.grants import RoleGrant
from broker.issuance import Issuance
from broker.issuers.assume_role import AssumeRoleIssuer
from broker.issuers.cache import CredentialCache
from broker.issuers.own_credentials import OwnCredentials
from broker.issuers.signing import KeyRing, generate_key_file
from broker.issuers.sts_client import StsClient
from broker.issuers.sts_http import HttpStsClient
from broker.issuers.web_identity import WebIdentityIssuer
from broker.rules.evaluate import evaluate
from broker.rules.schema import RuleSet
from broker.settings import AwsConfig, KeyConfig
from broker.store import MemoryStore
from tests.factories import identity

HUB, SPOKE = "arn:aws:iam::111122223333:role/Hub", "arn:aws:iam::444455556666:role/Spoke"
ROUNDS, CALLS, MAX_SECONDS = 7, 200, 60.0
TARGET = 1.2
TRANSPORT = os.environ.get("STS_BENCH_TRANSPORT", "event_loop")
RULES = {"version": 1, "defaults": {"session_name": "{email}"}, "rules": [
    {"id": "hub", "grant": [{"role": HUB, "source_identity": "{email}", "tags": {"team": "{claims.department}"},
                             "transitive_tags": ["team"]}]},
    {"id": "spoke", "grant": [{"role": SPOKE, "via": "assume_role", "from": HUB, "tags": {"spoke": "a"}}]}]}


async def _round(issue: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    for _ in range(CALLS):
        await issue()
    return (time.perf_counter() - start) / CALLS


async def compare(sts_url: str, keys: KeyRing, own: OwnCredentials) -> tuple[dict[str, float], int]:
    """Best seconds per issuance of each kind; and the hub sessions made while measuring (none: cached)."""
    aws = AwsConfig(sts_endpoint_url=sts_url)
    sts = HttpStsClient(aws) if TRANSPORT == "event_loop" else StsClient(aws)
    cache = CredentialCache(MemoryStore(), "bench-secret-" + "x" * 40, min_remaining=timedelta(minutes=5))
    web_identity = WebIdentityIssuer(keys, sts, issuer="https://broker.example.com", audience="sts.amazonaws.com",
                                     lifetime=timedelta(minutes=5))
    issuance = Issuance(sts, {"web_identity": web_identity}, cache, AuditLog(os.devnull))
    issuance.add("assume_role", AssumeRoleIssuer(sts, own, issuance))
    person = identity()
    decision = evaluate(RuleSet.model_validate(RULES), person)
    hub, spoke = decision.grant_for(HUB), decision.grant_for(SPOKE)
    assert isinstance(hub, RoleGrant) and isinstance(spoke, RoleGrant) and spoke.hub == hub
    kinds = {"direct": hub, "chained": spoke, "own": replace(spoke, chain_from=None, hub=None)}
    try:
        for grant in kinds.values():
            await issuance.issue(person, grant)  # warm: the hub session cached, connections open
        best = dict.fromkeys(kinds, float("inf"))
        deadline = time.perf_counter() + MAX_SECONDS
        before = cache.issued
        for _ in range(ROUNDS):
            for name, grant in kinds.items():
                best[name] = min(best[name], await _round(functools.partial(issuance.issue, person, grant)))
            if time.perf_counter() > deadline:
                break
        return best, cache.issued - before
    finally:
        await issuance.close()


def main() -> int:
    port = free_port()
    with TemporaryDirectory() as tmp, process([sys.executable, "-m", "broker.devstack.stub_sts", "--port", str(port),
                                               "--delay", "0"]):
        key_file = Path(tmp) / "k.pem"
        generate_key_file(key_file, bits=2048)
        keys = KeyRing.load([KeyConfig(kid="k", file=key_file, active=True)])
        (Path(tmp) / "credentials").write_text("[bench]\naws_access_key_id = AKIABENCH\n"
                                               "aws_secret_access_key = bench-secret\n")
        own = OwnCredentials(profile="bench", credentials_file=Path(tmp) / "credentials")
        url = f"http://{LOOPBACK}:{port}"
        wait_for(f"{url}/calls")
        best, hub_calls = uvloop.run(compare(url, keys, own))
    ratio = best["chained"] / best["direct"]
    print(f"sts paths ({TRANSPORT} transport, stub STS answering at once, {CALLS} issuances per round)")
    print(f"{'issuance':<44}{'us each':>10}{'per s':>10}")
    for name, label in (("direct", "direct (web identity, minted)"), ("chained", "chained (hub cached, AssumeRole)"),
                        ("own", "reference: AssumeRole, own credentials")):
        print(f"{label:<44}{best[name] * 1e6:>10.0f}{1 / best[name]:>10.0f}")
    verdict = "ok" if ratio <= TARGET else "OVER TARGET"
    print(f"chained / direct: {ratio:.2f} (target <= {TARGET}: {verdict}); hub sessions made while measuring: "
          f"{hub_calls}")
    return 0 if ratio <= TARGET and hub_calls == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
