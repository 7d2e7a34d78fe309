"""GET /roles (the role picker page) for a person with 500 roles in 100 accounts, against the same page for
a person with 2 roles, in the same run and the same app: the real app over ASGI (session cookie, rules
decision, preferences from the store, template), no network.

Printed: ms per page for each, the ratio, bytes of HTML per role, and the 500-role page filtered with ?q=.
Then in the browser (headless Chromium, as the tests drive it): the pages as served, with picker.js, and
the time from an input event in the filter box to the rows and the count updated (one animation frame
included), 500 rows against 2.
The picker should cost about what its rows cost: the ratio per role added is the number to watch
(target: the 500-role page under 100x the 2-role page, well below linear in the rows; on this project's
2-core machine, shared, it measured 21-62 ms against 0.7-2.3 ms). In Chromium, a keystroke at 500 rows took
50-64 ms from input event to the second frame after it, against 33 ms (two frames) at 2 rows; without
`content-visibility: auto` on the groups (picker.css) it was 270-410 ms.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from broker.config import load_settings
from broker.issuers.signing import generate_key_file
from broker.web.app import create_app
from broker.web.context import context_of_app
from tests.factories import identity

ACCOUNTS, PER_ACCOUNT = 100, 5
ROUNDS, MAX_CALLS, MAX_SECONDS = 5, 40, 20.0
TARGET_RATIO = 100.0


def rules() -> dict[str, object]:
    accounts = {f"{400000000000 + a}": f"team-{a:03d}-{'prod' if a % 2 else 'dev'}" for a in range(ACCOUNTS)}
    many = [{"role": f"arn:aws:iam::{acct}:role/{name}"} for acct in accounts
            for name in ("Admin", "Developer", "ReadOnly", "Billing", "Deployer")[:PER_ACCOUNT]]
    return {"version": 1, "accounts": accounts, "rules": [
        {"id": "many", "when": {"groups": {"contains": "many"}}, "grant": many},
        {"id": "two", "when": {"groups": {"contains": "two"}}, "grant": many[:2]}]}


def settings_in(workdir: Path) -> object:
    generate_key_file(workdir / "k.pem", bits=2048)
    (workdir / "idp_configs").mkdir()
    (workdir / "idp_configs" / "okta.yaml").write_text(yaml.safe_dump({
        "id": "okta", "type": "oidc", "name": "Okta", "issuer": "https://idp.example.com",
        "client_id": "c", "client_secret": "not-used-by-this-bench"}))
    (workdir / "rules.yaml").write_text(yaml.safe_dump(rules()))
    os.environ.setdefault("BROKER_SESSION_SECRET", secrets.token_urlsafe(48))
    (workdir / "broker.yaml").write_text(yaml.safe_dump({
        "public_url": "https://broker.example.com", "session": {"secret": "${BROKER_SESSION_SECRET}"},
        "keys": [{"kid": "k", "file": "k.pem", "active": True}], "idp_configs": "idp_configs",
        "rules": "rules.yaml", "audit": {"path": str(workdir / "audit.log")}}))
    return load_settings(workdir / "broker.yaml")


async def best_ms(call: Callable[[], Awaitable[object]]) -> float:
    await call()
    best, deadline = float("inf"), time.perf_counter() + MAX_SECONDS / 3
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(MAX_CALLS // ROUNDS):
            await call()
        best = min(best, (time.perf_counter() - start) / (MAX_CALLS // ROUNDS))
        if time.perf_counter() > deadline:
            break
    return best * 1000


async def run(workdir: Path) -> tuple[bool, dict[str, tuple[str, str]]]:
    app = create_app(settings_in(workdir))  # type: ignore[arg-type]
    sessions = context_of_app(app).sessions
    cookies = {}
    for who in ("many", "two"):
        _, cookies[who] = await sessions.create(identity(subject=who, groups=(who,)), None)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://broker.example.com") as client:
        async def page(who: str, q: str = "") -> httpx.Response:
            answer = await client.get("/roles", params={"q": q} if q else None, headers={"Accept": "text/html"},
                                      cookies={"sts_broker_session": cookies[who]})
            assert answer.status_code == 200 and "picker-role" in answer.text, answer.text[:300]
            return answer

        big, small = (await page("many")).text, (await page("two")).text
        assert big.count('class="picker-role"') == ACCOUNTS * PER_ACCOUNT and small.count('class="picker-role"') == 2
        many_ms, two_ms = await best_ms(lambda: page("many")), await best_ms(lambda: page("two"))
        filtered_ms = await best_ms(lambda: page("many", "prod admin"))
        served = {who: (await page(who)).headers["content-security-policy"] for who in ("many", "two")}
    ratio = many_ms / two_ms
    print(f"GET /roles, 500 roles in 100 accounts: {many_ms:.2f} ms ({len(big) / 1024:.0f} KiB, "
          f"{len(big) / (ACCOUNTS * PER_ACCOUNT):.0f} bytes per role)")
    print(f"GET /roles, 2 roles:                     {two_ms:.2f} ms ({len(small) / 1024:.1f} KiB)")
    print(f"ratio 500 / 2 roles: x{ratio:.1f} (x250 would be linear in the rows)")
    print(f"GET /roles?q=prod+admin (50 of 500):     {filtered_ms:.2f} ms")
    met = ratio < TARGET_RATIO
    print(f"target: 500 roles < x{TARGET_RATIO} the 2-role page: {'met' if met else 'NOT met'}")
    return met, {"many": (big, served["many"]), "two": (small, served["two"])}


# One keystroke's work, timed in the page: the input event, picker.js's filtering on the next frame, and the
# frame after it (so the time includes the browser applying the change).
TYPE_AND_TIME = """async (text) => {
  const q = document.getElementById('picker-q');
  const times = [];
  for (let i = 0; i < 16; i++) {
    const t0 = performance.now();
    q.value = i % 2 ? '' : text;
    q.dispatchEvent(new Event('input'));
    await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}"""


def _server(static: Path, html: str, csp: str) -> Callable[[Any], None]:
    def serve(route: Any) -> None:
        name = route.request.url.rsplit("/", 1)[-1]
        if name in ("picker.js", "picker.css"):
            kind = "text/javascript" if name.endswith(".js") else "text/css"
            route.fulfill(body=(static / name).read_text(), content_type=kind)
        else:
            route.fulfill(body=html, content_type="text/html", headers={"Content-Security-Policy": csp})
    return serve


def in_browser(pages: dict[str, tuple[str, str]]) -> tuple[float, float]:
    """Median ms per filter keystroke for each page, served with its own CSP and the broker's static files."""
    from playwright.sync_api import sync_playwright

    static = Path(__file__).resolve().parents[1] / "broker" / "web" / "static"
    results = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        for who in ("many", "two"):
            html, csp = pages[who]
            page = browser.new_page()

            page.route("https://broker.example.com/**", _server(static, html, csp))
            page.goto("https://broker.example.com/roles")
            results.append(float(page.evaluate(TYPE_AND_TIME, "prod admin" if who == "many" else "admin")))
            shown = page.text_content("#picker-count")
            assert shown in ("500 roles.", "2 roles."), shown  # the last keystroke cleared the filter
            page.close()
        browser.close()
    return results[0], results[1]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="picker-bench-") as tmp:
        met, pages = asyncio.run(run(Path(tmp)))
    typed_many, typed_two = in_browser(pages)
    print(f"filter in Chromium, input event to rows updated: 500 rows {typed_many:.1f} ms, 2 rows "
          f"{typed_two:.1f} ms (x{typed_many / typed_two:.1f}; a frame is 16.7 ms)")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
