"""Token exchange under load: wrk against uvicorn, each figure beside a baseline measured in the same run.

    python -m bench.token_exchange            (make bench runs it; wrk must be installed)

(a) answered from the credential cache: POST /oauth2/token with tokens of 64 people whose credentials are
    cached, against a bare Starlette endpoint on the same app (same middleware) that reads the same form
    body and answers JSON. Target: at least 60% of the bare endpoint's requests per second (the median over
    five rounds of two back-to-back runs, so the machine's drifting speed cancels out).
(b) every request calls STS (credential cache off), and STS is a stub that answers after 50 ms. At 200
    concurrent clients the ideal is 200 / 0.05 s = 4000 requests per second; target at least 80% of it,
    no errors. A blocked event loop would give 20 per second; a 40-thread pool 800.

Both are measured in two deployment shapes, each broker its own uvicorn process tree (uvloop and
httptools, as `sts-broker serve` runs), apart from the load generator and the stub STS (its own process):
- one process on the memory store (the embedded default: one event loop, one core);
- two replicas on a shared Redis (a private redis-server on a free port), as the README's deployment
  section scales: one process per core, every counter, replay mark and sealed credential in Redis. The two
  are uvicorn workers on one listening socket, the nearest a single machine gets to two replicas behind a
  load balancer.
BENCH_SHAPES=one or BENCH_SHAPES=replicas runs only one of them.
Every wrk run is bounded in time; every wait in count and time. Loopback only.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from broker.devstack.redis_server import running_redis
from broker.devstack.servers import LOOPBACK, free_port, http_server, send_json

PEOPLE = 64
SECONDS = 5
ROUNDS = 5  # odd: the paired ratio reported is the median round's (five: one slow round moves it less)
STS_DELAY = 0.05
CONCURRENCY_A, CONCURRENCY_B = 64, 200
ROLE = "arn:aws:iam::111122223333:role/BenchApp"
AUDIENCE = "bench-app"
TARGET_A, TARGET_B = 0.60, 0.80
SHAPES = os.environ.get("BENCH_SHAPES", "one,replicas").split(",")

# Which STS client the broker uses here: the event-loop client (the default, and the figures in the README),
# or boto3 in worker threads with STS_BENCH_TRANSPORT=boto3.
TRANSPORT = os.environ.get("STS_BENCH_TRANSPORT", "event_loop")


# ---- the app each broker process serves -------------------------------------------------------------


async def bare(request: Request) -> Response:
    """The baseline: read the same form body with the same parser, answer a JSON body of similar size."""
    from broker.token_exchange import _pairs

    form = dict(_pairs(await request.body()))
    return JSONResponse({"ok": len(form), "pad": "x" * 900}, headers={"Cache-Control": "no-store"})


def bench_app() -> Starlette:
    """uvicorn --factory bench.token_exchange:bench_app, with BENCH_BROKER_CONFIG naming broker.yaml."""
    from broker.cli import configure_logging
    from broker.config import load_settings
    from broker.web.app import create_app, settle_heap

    configure_logging()  # as `sts-broker serve` does, so the access log costs here what it costs there

    app = create_app(load_settings(Path(os.environ["BENCH_BROKER_CONFIG"])))
    # Matched first, one place ahead of /oauth2/token: both pay the same routing.
    app.router.routes.insert(0, Route("/bench/bare", bare, methods=["POST"]))
    settle_heap()  # as `sts-broker serve` does
    return app


# ---- set-up: keys, an issuer's JWKS, config files, processes ----------------------------------------


@contextmanager
def jwks_server(document: dict[str, Any]) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            send_json(self, document, {"Cache-Control": "max-age=3600"})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with http_server(Handler) as url:
        yield url


@dataclass(frozen=True)
class Shape:
    name: str
    workers: int
    store: str  # several workers need a shared store


def write_config(work: Path, port: int, issuer: str, sts_url: str, *, cache: bool, store: str) -> Path:
    from broker.issuers.signing import generate_key_file

    key = work / "keys" / "k.pem"
    if not key.exists():
        generate_key_file(key, bits=2048)
    (work / "idp_configs").mkdir(exist_ok=True)
    (work / "idp_configs" / "app.yaml").write_text(yaml.safe_dump({
        "id": "app", "type": "token", "issuer": issuer, "jwks_uri": f"{issuer}/jwks", "client_ids": [AUDIENCE]}))
    (work / "rules.yaml").write_text(yaml.safe_dump({"version": 1, "rules": [{
        "id": "app-users", "idps": ["app"],
        "grant": [{"role": ROLE, "token": "passthrough", "session_name": "{subject}"}]}]}))
    config = work / f"broker-{port}.yaml"
    config.write_text(yaml.safe_dump({
        "public_url": f"http://{LOOPBACK}:{port}", "session": {"secret": secrets.token_urlsafe(48)},
        "store": {"url": store},
        "keys": [{"kid": "k", "file": "keys/k.pem", "active": True}],
        "aws": {"sts_endpoint_url": sts_url}, "idp_configs": "idp_configs", "rules": "rules.yaml",
        "audit": {"path": f"audit-{port}.log"},
        "rate_limits": {"token_exchange_per_client": 10**9, "token_exchange_per_subject": 10**9},
        "token_exchange": {"cache_credentials": cache, "sts_transport": TRANSPORT},
    }))
    return config


def wait_for(url: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback URL we built
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


@contextmanager
def process(args: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass(frozen=True)
class Broker:
    url: str
    pid: int  # uvicorn's own process; with --workers, the workers are its children


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of a process and its children, from /proc; None where there is no /proc."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return None
    for entry in entries:
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(entry) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


@contextmanager
def broker(config: Path, port: int, workers: int) -> Iterator[Broker]:
    root = str(Path(__file__).resolve().parent.parent)
    # As `sts-broker serve` runs uvicorn: its HTTP protocol (one write per response), no WebSockets, no
    # access log of uvicorn's own, no proxy-header rewriting.
    args = [sys.executable, "-m", "uvicorn", "--factory", "bench.token_exchange:bench_app", "--host", LOOPBACK,
            "--port", str(port), "--http", "broker.seams.uvicorn:HttpProtocol", "--ws", "none",
            "--log-level", "warning", "--no-access-log", "--no-proxy-headers",
            "--workers", str(workers)]
    with process(args, {"BENCH_BROKER_CONFIG": str(config), "PYTHONPATH": root}) as proc:
        url = f"http://{LOOPBACK}:{port}"
        wait_for(f"{url}/healthz")
        yield Broker(url, proc.pid)


# ---- load -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cores: float | None = None  # the broker's CPU during the run, in cores (1.0: one core all the time)

    @property
    def cpu_us(self) -> float | None:
        """The broker's CPU per answered request, in microseconds."""
        return None if self.cores is None or not self.rps else self.cores / self.rps * 1e6


def lua_script(path: Path, target: str, bodies: list[str]) -> Path:
    quoted = ",\n".join(json.dumps(b) for b in bodies)
    path.write_text(f"""
local bodies = {{ {quoted} }}
local n = 0
local headers = {{["Content-Type"] = "application/x-www-form-urlencoded"}}
request = function()
  n = n + 1
  return wrk.format("POST", "{target}", headers, bodies[(n % #bodies) + 1])
end
""")
    return path


def _ms(text: str) -> float:
    duration = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if duration is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    value, unit = duration.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _reported(pattern: str, out: str) -> str:
    """A figure wrk's --latency report always carries (its first group)."""
    found = re.search(pattern, out)
    if found is None:
        raise ValueError(f"wrk's report has no {pattern!r}: {out[:400]!r}")
    return found.group(1)


def wrk(target: Broker, script: Path, connections: int, seconds: int = SECONDS) -> Result:
    cpu_before, started = cpu_seconds(target.pid), time.monotonic()
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s",
                          "-s", str(script), target.url], capture_output=True, text=True, timeout=seconds + 30,
                         check=True).stdout
    cpu_after, elapsed = cpu_seconds(target.pid), time.monotonic() - started
    cores = None if cpu_before is None or cpu_after is None else (cpu_after - cpu_before) / elapsed
    rps = float(_reported(r"Requests/sec:\s+([\d.]+)", out))
    p50 = _ms(_reported(r"\s50%\s+(\S+)", out))
    p99 = _ms(_reported(r"\s99%\s+(\S+)", out))
    requests = int(_reported(r"(\d+) requests in", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, socket_errors.groups())) if socket_errors else 0)
    return Result(rps, p50, p99, requests, errors, cores)


def best(results: list[Result]) -> Result:
    top = max(results, key=lambda r: r.rps)
    return Result(top.rps, top.p50_ms, top.p99_ms, sum(r.requests for r in results), sum(r.errors for r in results),
                  top.cores)


def post(url: str, body: str) -> int:
    request = urllib.request.Request(url, data=body.encode(), method="POST",  # noqa: S310 - loopback
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def stub_calls(url: str) -> int:
    with urllib.request.urlopen(f"{url}/calls", timeout=5) as response:  # noqa: S310 - loopback
        return int(response.read())


def token_bodies(key: RSAKey, issuer: str) -> list[str]:
    now = int(time.time())
    bodies = []
    for n in range(PEOPLE):
        claims = {"iss": issuer, "sub": f"user-{n:04d}", "aud": AUDIENCE, "iat": now, "exp": now + 3600,
                  "email": f"user{n}@example.com", "email_verified": True}
        token = jwt.encode({"alg": "RS256", "kid": "bench"}, claims, key)
        bodies.append(urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                                 "subject_token": token,
                                 "subject_token_type": "urn:ietf:params:oauth:token-type:id_token"}))
    return bodies


def interleaved(pairs: list[tuple[Broker, Path]], connections: int) -> tuple[list[Result], float]:
    """Each series' best run, and the median over rounds of the first series' rate over the second's. The
    two runs of a round are back to back, so the paired ratio follows the machine's drifting speed, which
    the ratio of the two best runs (possibly from different minutes) does not."""
    runs: list[list[Result]] = [[] for _ in pairs]
    for _ in range(ROUNDS):
        for i, (target, script) in enumerate(pairs):
            runs[i].append(wrk(target, script, connections))
    ratios = sorted(ours.rps / base.rps for ours, base in zip(runs[0], runs[1], strict=True))
    return [best(r) for r in runs], ratios[len(ratios) // 2]


def line(name: str, r: Result, base: float, label: str) -> str:
    cpu = "" if r.cores is None or r.cpu_us is None else f"{r.cores:>6.2f}{r.cpu_us:>7.0f}"
    return (f"{name:<34}{r.rps:>9.0f}{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}{r.errors:>8}{cpu:>13}"
            f"{r.rps / base:>8.2f}  {label}")


@dataclass(frozen=True)
class Figures:
    a_ours: Result
    a_bare: Result
    a_ratio: float  # exchange / bare, the median round
    b_ours: Result
    b_bare: Result
    b_ratio: float
    sts_calls: int


def measure(shape: Shape, work: Path, key: RSAKey, issuer: str, sts_url: str) -> Figures:
    with ExitStack() as stack:
        port_a, port_b = free_port(), free_port()
        configs = [write_config(work, port, issuer, sts_url, cache=cache, store=shape.store)
                   for port, cache in ((port_a, True), (port_b, False))]
        cached = stack.enter_context(broker(configs[0], port_a, shape.workers))
        uncached = stack.enter_context(broker(configs[1], port_b, shape.workers))
        bodies = token_bodies(key, issuer)
        assert all(post(f"{cached.url}/oauth2/token", b) == 200 for b in bodies), "warm-up exchange failed"
        assert post(f"{uncached.url}/oauth2/token", bodies[0]) == 200, "warm-up exchange failed"
        exchange_lua = lua_script(work / "exchange.lua", "/oauth2/token", bodies)
        bare_lua = lua_script(work / "bare.lua", "/bench/bare", bodies)

        (a_ours, a_bare), a_ratio = interleaved([(cached, exchange_lua), (cached, bare_lua)], CONCURRENCY_A)
        calls_before = stub_calls(sts_url)
        (b_ours, b_bare), b_ratio = interleaved([(uncached, exchange_lua), (uncached, bare_lua)], CONCURRENCY_B)
        return Figures(a_ours, a_bare, a_ratio, b_ours, b_bare, b_ratio, stub_calls(sts_url) - calls_before)


def report(shape: Shape, f: Figures) -> bool:
    ideal = CONCURRENCY_B / STS_DELAY
    ok_a = f.a_ratio >= TARGET_A and f.a_ours.errors == 0
    ok_b = f.b_ours.rps / ideal >= TARGET_B and f.b_ours.errors == 0
    print(f"\n{shape.name}:")
    # req/s, latency: each series' best run. ratio: of best runs; "paired": the median round's ratio of two
    # back-to-back runs (what the (a) target is judged on).
    # cores, us: the broker's CPU during the run (1.00 = one core busy all the time) and per request. An
    # event loop blocked on STS would show few cores and few requests; a CPU-bound one, one core per process.
    print(f"{'':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'cores':>6}{'us':>7}{'ratio':>8}")
    print(line(f"(a) bare endpoint, {CONCURRENCY_A} conns", f.a_bare, f.a_bare.rps, "baseline"))
    print(line("(a) exchange, credential cache", f.a_ours, f.a_bare.rps,
               f"paired {f.a_ratio:.2f}, target >= {TARGET_A:.2f} of bare: {'PASS' if ok_a else 'FAIL'}"))
    print(line(f"(b) bare endpoint, {CONCURRENCY_B} conns", f.b_bare, ideal, "vs ideal (CPU ceiling)"))
    print(line(f"(b) exchange, STS {STS_DELAY * 1000:.0f} ms", f.b_ours, ideal,
               f"target >= {TARGET_B:.2f} of ideal {ideal:.0f}/s: {'PASS' if ok_b else 'FAIL'}"))
    print(f"(b) exchange / bare at {CONCURRENCY_B} conns, paired: {f.b_ratio:.2f}; "
          f"STS calls {f.sts_calls} for {f.b_ours.requests} exchanges wrk counted "
          f"(+ up to {CONCURRENCY_B} still in flight as each run stopped)")
    return f.a_ours.errors + f.b_ours.errors == 0


def main() -> int:
    if shutil.which("wrk") is None:
        print("wrk is not installed: `make bench` installs it (Debian: apt-get install wrk)", file=sys.stderr)
        return 1
    key = RSAKey.generate_key(2048, parameters={"kid": "bench", "alg": "RS256", "use": "sig"}, private=True)
    clean = True
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        issuer = stack.enter_context(jwks_server({"keys": [key.as_dict(private=False)]}))
        sts_port = free_port()
        stack.enter_context(process([sys.executable, "-m", "broker.devstack.stub_sts", "--port", str(sts_port),
                                     "--delay", str(STS_DELAY)]))
        sts_url = f"http://{LOOPBACK}:{sts_port}"
        wait_for(f"{sts_url}/calls")
        for shape in shapes(stack):
            # The figures are the result; only errors (refused or failed requests under load) fail the run.
            clean &= report(shape, measure(shape, work, key, issuer, sts_url))
    return 0 if clean else 1


def shapes(stack: ExitStack) -> Iterator[Shape]:
    if "one" in SHAPES:
        yield Shape("one process, memory store", 1, "memory://")
    if "replicas" in SHAPES:
        redis = stack.enter_context(running_redis())
        yield Shape("two replicas (uvicorn workers) on a shared Redis", 2, redis.url)


if __name__ == "__main__":
    sys.exit(main())
