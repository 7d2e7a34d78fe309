"""Soak: mixed traffic at a fixed rate against two broker replicas (`sts-broker serve` subprocesses) on one
Redis, for a bounded time; every answer checked, latency per route, RSS of each replica at start and end.

    python -m bench.soak [--seconds 120] [--rate 3]

The stack is the devstack's (strict local AWS on moto, the dev OIDC and SAML IdPs) plus a token IdP for the
exchange. Replica A answers at the public URL (IdPs send browsers back there); B is reached directly, as a
load balancer would: an OIDC login starts on A and finishes on B, a SAML login's session is read on B.
The mix, one operation started every 1/rate s (open loop, so a slow answer cannot slow the offered load):
OIDC login, SAML login, token exchange (x2), credentials, console. Pass: no error, no lost login (every
login started ends in a session the other replica sees), RSS at the end within 10% of the start (after a
warm-up round). Exit status 1 otherwise. Every wait is bounded; loopback only.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml
from joserfc import jwt
from joserfc.jwk import RSAKey

from bench.token_exchange import jwks_server, wait_for
from broker.devstack import browser
from broker.devstack.dev_saml_idp import browser_login
from broker.devstack.redis_server import running_redis
from broker.devstack.servers import LOOPBACK, free_port
from broker.devstack.stack import DEMO_RULES, DevStack, aws_client, run_stack, trust_policy
from broker.settings import Settings

ACCOUNT = "717171717171"
APP = "soak-app"
APP_ROLE = "SoakApp"  # trusts the broker's minted tokens for the app's people (`app:*`)
GROWTH_LIMIT = 0.10
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


def register_app_role(dev: DevStack) -> None:
    iam = aws_client(dev.aws, "iam")
    provider = iam.list_open_id_connect_providers()["OpenIDConnectProviderList"][0]["Arn"]
    iam.create_role(RoleName=APP_ROLE, AssumeRolePolicyDocument=trust_policy(
        provider, provider.split(":oidc-provider/", 1)[1], "app:*"))


def rules_file(path: Path) -> Path:
    """The demo rules in this account, plus the token IdP's people: DemoDeveloper via a minted token."""
    text = DEMO_RULES.read_text().replace("123456789012", ACCOUNT).replace("210987654321", ACCOUNT[::-1])
    rules = yaml.safe_load(text)
    rules["rules"].append({"id": "app-users", "idps": ["app"], "grant": [
        {"role": f"arn:aws:iam::{ACCOUNT}:role/{APP_ROLE}", "session_name": "{subject}"}]})
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


@contextmanager
def serve(config: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    root = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "serve", "--config", str(config), "--host", LOOPBACK, "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": root})
    try:
        wait_for(f"http://{LOOPBACK}:{port}/healthz", 60)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Record:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    logins_started: int = 0
    logins_done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def login(self, done: bool | None = None) -> None:
        """A login started (done None), or how it ended."""
        with self.lock:
            if done is None:
                self.logins_started += 1
            elif done:
                self.logins_done += 1

    def timed(self, route: str, call: Callable[[], httpx.Response], expect: int) -> httpx.Response:
        started = time.perf_counter()
        response = call()
        elapsed = time.perf_counter() - started
        with self.lock:
            self.latencies.setdefault(route, []).append(elapsed)
            if response.status_code != expect:
                self.errors.append(f"{route}: {response.status_code} {response.text[:120]!r}")
        return response


@dataclass
class Soak:
    a: str
    b: str
    key: RSAKey
    issuer: str
    record: Record = field(default_factory=Record)
    counter: Iterator[int] = field(default_factory=itertools.count)
    # alice's browser for credentials and console: signed in once, its session used on both replicas
    alice: httpx.Client = field(default_factory=browser.browser)
    csrf: str = ""

    def sign_in_alice(self) -> None:
        assert browser.login(self.alice, self.a, "dev", "alice").status_code == 303
        self.csrf = browser.roles(self.alice, self.a)["csrf_token"]

    def oidc_login(self) -> None:
        with browser.browser() as client:
            self.record.login()
            start = self.record.timed("GET /login/dev", lambda: client.get(f"{self.a}/login/dev"), 303)
            callback = browser.authorize_at_idp(client, start.headers["location"], "alice")
            on_b = self.b + callback.removeprefix(self.a)  # finished on the other replica
            self.record.timed("GET /oidc/dev/callback", lambda: client.get(on_b), 303)
            self.record.login(browser.roles(client, self.a)["identity"]["subject"] == "alice")

    def saml_login(self) -> None:
        with browser.browser() as client:
            self.record.login()
            self.record.timed("SAML login (to the ACS)", lambda: browser_login(client, self.a, "devsaml", "bob"), 303)
            self.record.login(browser.roles(client, self.b)["identity"]["idp"] == "devsaml")  # read on B

    def token_exchange(self) -> None:
        n = next(self.counter) % 32  # 32 people: the credential cache serves most, STS the rest
        now = int(time.time())
        token = jwt.encode({"alg": "RS256", "kid": "soak"}, {"iss": self.issuer, "sub": f"app-user-{n}", "aud": APP,
                                                            "iat": now, "exp": now + 600}, self.key)
        body = {"grant_type": EXCHANGE, "subject_token": token,
                "subject_token_type": "urn:ietf:params:oauth:token-type:id_token"}
        target = self.a if n % 2 else self.b
        self.record.timed("POST /oauth2/token",
                          lambda: httpx.post(f"{target}/oauth2/token", data=body, timeout=30), 200)

    def _role_action(self, action: str, role: str, expect: int) -> None:
        target = self.a if next(self.counter) % 2 else self.b
        self.record.timed(f"POST /roles/{action}",
                          lambda: browser.post_role(self.alice, target, action, role, self.csrf), expect)

    def credentials(self) -> None:
        self._role_action("credentials", f"arn:aws:iam::{ACCOUNT}:role/DemoDeveloper", 200)

    def console(self) -> None:
        self._role_action("console", f"arn:aws:iam::{ACCOUNT}:role/DemoAdmin", 303)

    def mix(self) -> list[Callable[[], None]]:
        return [self.oidc_login, self.token_exchange, self.credentials, self.saml_login, self.token_exchange,
                self.console]


def run(soak: Soak, seconds: float, rate: float) -> None:
    """Open loop: one operation started every 1/rate s; the pool bounds what is in flight."""
    operations = itertools.cycle(soak.mix())
    deadline = time.monotonic() + seconds
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = []
        next_at = time.monotonic()
        while next_at < deadline:
            futures.append(pool.submit(next(operations)))
            next_at += 1 / rate
            time.sleep(max(0.0, next_at - time.monotonic()))
        for future in futures:
            exc = future.exception(timeout=120)
            if exc is not None:
                soak.record.errors.append(f"{type(exc).__name__}: {str(exc)[:160]}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(soak: Soak, rss: dict[str, tuple[int, int]], seconds: float) -> bool:
    record = soak.record
    print(f"soak: {seconds:.0f} s, two replicas on one Redis")
    print(f"{'route':34} {'count':>6} {'p50 ms':>8} {'p99 ms':>8}")
    for route, values in sorted(record.latencies.items()):
        p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
        print(f"{route:34} {len(values):6d} {p50:8.1f} {p99:8.1f}")
    lost = record.logins_started - record.logins_done
    print(f"errors: {len(record.errors)}; logins: {record.logins_started} started, {lost} lost")
    for line in record.errors[:10]:
        print(f"  {line}")
    flat = True
    for name, (start, end) in rss.items():
        growth = (end - start) / start
        flat &= growth <= GROWTH_LIMIT
        print(f"RSS {name}: {start / 1024:.1f} MiB at start, {end / 1024:.1f} MiB at end ({growth:+.1%})")
    ok = not record.errors and lost == 0 and flat
    print("PASS" if ok else "FAIL")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--rate", type=float, default=3.0, help="operations started per second")
    args = parser.parse_args(argv)
    key = RSAKey.generate_key(2048, parameters={"kid": "soak", "alg": "RS256", "use": "sig"}, private=True)
    with tempfile.TemporaryDirectory(prefix="sts-broker-soak-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        redis = stack.enter_context(running_redis())
        issuer = stack.enter_context(jwks_server({"keys": [key.as_dict(private=False)]}))
        port_b = free_port()
        replicas: dict[str, subprocess.Popen[bytes]] = {}

        @contextmanager
        def two_replicas(config: Path, settings: Settings, port: int) -> Iterator[None]:
            """run_stack's broker: replica A at the public URL, and B, on the same broker.yaml."""
            with serve(config, port) as a, serve(config, port_b) as b:
                replicas["A"], replicas["B"] = a, b
                yield

        app_idp = {"id": "app", "type": "token", "issuer": issuer, "jwks_uri": f"{issuer}/jwks", "client_ids": [APP]}
        dev = stack.enter_context(run_stack(
            work / "stack", rules=rules_file(work / "rules.yaml"), account_id=ACCOUNT, extra_idps={"app": app_idp},
            serve_broker=two_replicas, overrides={
                "store": {"url": redis.url}, "access_log": "errors",
                "rate_limits": {"login_starts": 10**6, "token_exchange_per_client": 10**6,
                                "token_exchange_per_subject": 10**6}}))
        register_app_role(dev)
        soak = Soak(dev.broker_url, f"http://{LOOPBACK}:{port_b}", key, issuer)
        stack.callback(soak.alice.close)
        soak.sign_in_alice()
        for operation in soak.mix():  # warm-up: every path once (imports, pools, keys, caches)
            operation()
        soak.record = Record()
        start = {name: rss_kib(proc.pid) for name, proc in replicas.items()}
        started = time.monotonic()
        run(soak, args.seconds, args.rate)
        elapsed = time.monotonic() - started
        rss = {name: (start[name], rss_kib(proc.pid)) for name, proc in replicas.items()}
        return 0 if report(soak, rss, elapsed) else 1
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
