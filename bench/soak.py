"""Soak: mixed traffic at a fixed rate against two broker replicas (`sts-broker serve` processes) that share
one Redis, for minutes: `python -m bench.soak [--seconds 120] [--rate 3]`.

Each scenario starts on a fixed schedule (the rate does not slow down when the broker does) and is one of:
- oidc: a login at the development OIDC IdP, the role list, credentials (credential_process) and a console
  sign-in through the strict local AWS's federation page;
- saml: a login at the pysaml2 IdP (HTTP-POST to the ACS), the role list and credentials;
- exchange: a mobile app's ID token exchanged for credentials at /oauth2/token.
Every request to the broker goes to the replica the previous one did not (a round-robin balancer), so a
login started on one replica finishes on the other and only the shared Redis can carry it.

Printed: scenarios run and late, errors (any answer other than the expected one), lost logins (started but
not landed on /roles), p50/p99 per route, and each replica's RSS after the warm-up and at the end (flat
means within 10%). Exit status 1 when there was an error, a lost login or RSS growth past 10%.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx
import yaml

from broker.devstack import browser
from broker.devstack.dev_saml_idp import browser_login as saml_browser_login
from broker.devstack.redis_server import running_redis
from broker.devstack.servers import LOOPBACK, free_port
from broker.devstack.stack import DEMO_RULES, SAML_IDP_ID, DevStack, aws_client, run_stack
from broker.settings import Settings
from broker.token_exchange import GRANT_TYPE, ID_TOKEN_TYPE

MOBILE_AUD = "soak-mobile"
MAX_SECONDS, MAX_RATE = 1800.0, 20.0
RSS_GROWTH_LIMIT = 0.10
SCENARIOS = ("oidc", "saml", "exchange", "oidc", "exchange")  # logins are dearer; exchanges are most traffic
IDP_SEGMENT = re.compile(r"/(login|oidc|saml)/[^/]+")


@dataclass
class Tally:
    """What the scenarios saw, shared by the worker threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    logins_started: int = 0
    logins_landed: int = 0
    done: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def timed(self, route: str, seconds: float) -> None:
        with self.lock:
            self.latencies[route].append(seconds)

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)


class Balancer(httpx.HTTPTransport):
    """Round robin over the replicas for requests to the broker; times each request to the broker by route
    (to the end of its body), leaving IdP and AWS requests alone."""

    def __init__(self, replicas: tuple[int, int], tally: Tally) -> None:
        super().__init__()
        self._replicas, self._tally, self._turn = replicas, tally, itertools.cycle(replicas)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.port not in self._replicas:
            return super().handle_request(request)
        request.url = request.url.copy_with(port=next(self._turn))
        started = time.perf_counter()
        response = super().handle_request(request)
        response.read()
        route = IDP_SEGMENT.sub(lambda m: f"/{m.group(1)}/{{idp}}", request.url.path)
        self._tally.timed(f"{request.method} {route}", time.perf_counter() - started)
        return response


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class Replicas:
    ports: tuple[int, int] = (0, 0)
    pids: tuple[int, int] = (0, 0)


def serve_two(replicas: Replicas, log: Path) -> Callable[[Path, Settings, int], AbstractContextManager[object]]:
    """run_stack's broker: two `sts-broker serve` processes on one config (the public URL is the first's)."""

    @contextmanager
    def serve(config: Path, settings: Settings, port: int) -> Iterator[object]:
        ports = (port, free_port())
        sink = log.open("ab")
        procs = [subprocess.Popen([sys.executable, "-m", "broker", "serve", "--config", str(config), "--host",
                                   LOOPBACK, "--port", str(p)], stdout=sink, stderr=sink) for p in ports]
        try:
            for p in ports:
                wait_ready(f"http://{LOOPBACK}:{p}")
            replicas.ports, replicas.pids = ports, (procs[0].pid, procs[1].pid)
            yield None
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(15)
            sink.close()

    return serve


def wait_ready(url: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} was not ready within {seconds:.0f} s")


def soak_rules(work: Path) -> Path:
    """The demo's rules, plus a mobile app (a `type: token` IdP) granted DemoDeveloper."""
    rules: dict[str, Any] = yaml.safe_load(DEMO_RULES.read_text())
    rules["rules"].insert(0, {"id": "mobile-app", "idps": ["mobile"], "grant": [
        {"role": "arn:aws:iam::123456789012:role/DemoDeveloper", "duration": "1h"}]})
    path = work / "soak-rules.yaml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


def trust_mobile_subjects(stack: DevStack) -> None:
    """DemoDeveloper trusts the broker's tokens for the OIDC and SAML IdPs; the soak's mobile app too."""
    iam = aws_client(stack.aws, "iam")
    policy = iam.get_role(RoleName="DemoDeveloper")["Role"]["AssumeRolePolicyDocument"]
    text = policy if isinstance(policy, str) else json.dumps(policy)
    iam.update_assume_role_policy(RoleName="DemoDeveloper",
                                  PolicyDocument=text.replace('"dev:*"', '"dev:*", "mobile:*"'))


class Scenarios:
    def __init__(self, stack: DevStack, replicas: Replicas, tally: Tally, token: Callable[[str], str]) -> None:
        self.stack, self.replicas, self.tally, self.token = stack, replicas, tally, token

    def client(self) -> httpx.Client:
        return httpx.Client(timeout=30.0, follow_redirects=False, transport=Balancer(self.replicas.ports, self.tally))

    def run(self, kind: str, n: int) -> None:
        try:
            getattr(self, kind)(n)
            with self.tally.lock:
                self.tally.done[kind] += 1
        except Exception as exc:  # every failure counts; the soak goes on
            self.tally.error(f"{kind} #{n}: {type(exc).__name__}: {str(exc)[:200]}")

    def _landed(self, response: httpx.Response) -> None:
        if response.status_code != 303 or response.headers.get("location") != "/roles":
            raise AssertionError(f"login ended with {response.status_code}: {response.text[:200]}")
        with self.tally.lock:
            self.tally.logins_landed += 1

    def _credentials(self, client: httpx.Client, role: str, csrf: str) -> None:
        answer = browser.post_role(client, self.stack.broker_url, "credentials", role, csrf,
                                   format="credential_process")
        if answer.status_code != 200 or not answer.json().get("SessionToken"):
            raise AssertionError(f"credentials answered {answer.status_code}: {answer.text[:200]}")

    def oidc(self, n: int) -> None:
        with self.client() as client:
            with self.tally.lock:
                self.tally.logins_started += 1
            self._landed(browser.login(client, self.stack.broker_url, "dev", "alice"))
            view = browser.roles(client, self.stack.broker_url)
            role = next(r["role_arn"] for r in view["roles"] if r["role_arn"].endswith("/DemoDeveloper"))
            self._credentials(client, role, view["csrf_token"])
            console = browser.post_role(client, self.stack.broker_url, "console", role, view["csrf_token"])
            if console.status_code != 303:
                raise AssertionError(f"console answered {console.status_code}: {console.text[:200]}")
            if client.get(console.headers["location"]).status_code != 200:
                raise AssertionError("the federation endpoint refused the sign-in token")

    def saml(self, n: int) -> None:
        with self.client() as client:
            with self.tally.lock:
                self.tally.logins_started += 1
            self._landed(saml_browser_login(client, self.stack.broker_url, SAML_IDP_ID, "bob"))
            view = browser.roles(client, self.stack.broker_url)
            self._credentials(client, view["roles"][0]["role_arn"], view["csrf_token"])

    def exchange(self, n: int) -> None:
        form = {"grant_type": GRANT_TYPE, "subject_token": self.token(f"app-user-{n % 50}"),
                "subject_token_type": ID_TOKEN_TYPE}
        with self.client() as client:
            answer = client.post(f"{self.stack.broker_url}/oauth2/token", data=form)
        if answer.status_code != 200 or "SessionToken" not in answer.text:
            raise AssertionError(f"token exchange answered {answer.status_code}: {answer.text[:200]}")


def drive(scenarios: Scenarios, seconds: float, rate: float, warmup: float) -> tuple[int, int, tuple[int, int]]:
    """Start one scenario every 1/rate seconds for `seconds`; returns (started, late, RSS after warm-up)."""
    started = late = 0
    rss_start = (0, 0)
    begin = time.monotonic()
    futures: list[Future[None]] = []
    with ThreadPoolExecutor(max_workers=12) as pool:
        for n in itertools.count():
            due = begin + n / rate
            if due - begin >= seconds:
                break
            if rss_start == (0, 0) and due - begin >= warmup:
                rss_start = (rss_kib(scenarios.replicas.pids[0]), rss_kib(scenarios.replicas.pids[1]))
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            elif pause < -1.0 / rate:
                late += 1
            futures.append(pool.submit(scenarios.run, SCENARIOS[n % len(SCENARIOS)], n))
            started += 1
        for future in futures:
            future.result()
    return started, late, rss_start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(tally: Tally, started: int, late: int, rss: tuple[tuple[int, int], tuple[int, int]]) -> int:
    print(f"scenarios started {started} (late {late}); done {dict(tally.done)}")
    print(f"logins started {tally.logins_started}, landed {tally.logins_landed}, "
          f"lost {tally.logins_started - tally.logins_landed}; errors {len(tally.errors)}")
    for line in tally.errors[:10]:
        print(f"  error: {line}")
    print(f"{'route':44} {'count':>6} {'p50 ms':>8} {'p99 ms':>8}")
    for route, values in sorted(tally.latencies.items()):
        p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
        print(f"{route:44} {len(values):6d} {p50:8.1f} {p99:8.1f}")
    growth = max(end / start - 1 for start, end in zip(rss[0], rss[1], strict=True))
    for i, (start, end) in enumerate(zip(rss[0], rss[1], strict=True)):
        print(f"replica {i + 1} RSS: {start / 1024:.1f} MiB after warm-up -> {end / 1024:.1f} MiB at the end "
              f"({(end / start - 1) * 100:+.1f}%)")
    lost = tally.logins_started - tally.logins_landed
    return 1 if tally.errors or lost or growth > RSS_GROWTH_LIMIT else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="how long traffic runs (default 120)")
    parser.add_argument("--rate", type=float, default=3.0, help="scenarios started per second (default 3)")
    args = parser.parse_args(argv)
    seconds, rate = min(args.seconds, MAX_SECONDS), min(args.rate, MAX_RATE)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.support.token_issuer import running_issuer

    tally, replicas = Tally(), Replicas()
    with TemporaryDirectory() as tmp, running_redis() as redis, running_issuer() as issuer:
        work = Path(tmp)
        mobile = {"id": "mobile", "type": "token", "name": "Soak mobile app", "issuer": issuer.url,
                  "client_ids": [MOBILE_AUD]}
        with run_stack(work / "stack", rules=soak_rules(work), extra_idps={"mobile": mobile},
                       overrides={"store": {"url": redis.url}}, serve_broker=serve_two(replicas, work / "replicas.log")
                       ) as stack:
            trust_mobile_subjects(stack)
            scenarios = Scenarios(stack, replicas, tally, lambda sub: issuer.token(sub=sub, aud=MOBILE_AUD))
            started, late, rss_start = drive(scenarios, seconds, rate, warmup=min(20.0, seconds / 5))
            rss_end = (rss_kib(replicas.pids[0]), rss_kib(replicas.pids[1]))
            print(f"soak: {seconds:.0f} s at {rate:g} scenarios/s, two replicas on one Redis ({redis.url})")
            return report(tally, started, late, (rss_start, rss_end))


if __name__ == "__main__":
    raise SystemExit(main())
