"""Start-up to the first `/readyz` 200, as a whole process, against a bare uvicorn + Starlette app started the
same way by the same interpreter (the floor: Python, uvicorn and Starlette importing and binding a socket).

    python -m bench.startup [--reps 5] [--compare /work/main]

Three cases, interleaved (a busy neighbour slows each alike), each figure the median of --reps runs:
- bare: uvicorn + Starlette serving one /readyz route;
- example: `sts-broker serve` with examples/config/broker.yaml (its key file generated; the rest as shipped);
- large: 20 IdP files (the repo's idp_configs/, SAML metadata included, plus OIDC ones) and 1,000 rules.
Targets: large under 1.5 s; example within 5x of bare. `--compare DIR` runs the broker cases again with the
code (and .venv) of another checkout, such as main, in the same run: before and after side by side.

Each process starts as an installed one would: with its modules' bytecode compiled (a cache per checkout in
the temporary directory, filled by one uncounted warm-up run of each case; PYTHONDONTWRITEBYTECODE, set in
development shells, would otherwise make every start compile the broker's sources again).
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
LARGE_TARGET, EXAMPLE_RATIO, TIMEOUT = 1.5, 5.0, 30.0
IDP_FILES, RULES = 20, 1000
ENV = {"BROKER_SESSION_SECRET": secrets.token_urlsafe(48), "BROKER_STORE_URL": "memory://",
       **{f"{name}_CLIENT_SECRET": "bench-client-secret" for name in ("OKTA", "ENTRA", "GOOGLE", "KEYCLOAK")}}
BARE_APP = """
import sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def readyz(request):
    return JSONResponse({"ready": True})

uvicorn.run(Starlette(routes=[Route("/readyz", readyz)]), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning")
"""


@dataclass(frozen=True)
class Case:
    name: str
    python: str
    argv: tuple[str, ...]  # after the interpreter; {port} is replaced
    src: Path
    pycache: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ready(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def time_to_ready(case: Case) -> tuple[float, float]:
    """Wall seconds to the first /readyz 200, and the CPU seconds the process used (until it was stopped
    right after: a figure a busy machine disturbs less than the wall time)."""
    port = free_port()
    argv = [case.python, *(a.replace("{port}", str(port)) for a in case.argv)]
    env = {**os.environ, **ENV, "PYTHONPATH": str(case.src), "PYTHONPYCACHEPREFIX": str(case.pycache)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=case.src, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while not ready(port):
            if proc.poll() is not None:
                err = proc.stderr.read().decode()[-600:] if proc.stderr else ""
                raise SystemExit(f"{case.name} exited {proc.returncode}: {err}")
            if time.perf_counter() - start > TIMEOUT:
                raise SystemExit(f"{case.name}: no /readyz 200 within {TIMEOUT} s")
            time.sleep(0.005)
        wall = time.perf_counter() - start
    finally:
        proc.terminate()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime


def _write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _rule(i: int) -> dict[str, object]:
    account = f"{100000000000 + i % 50:012d}"
    rule: dict[str, object] = {
        "id": f"team-{i}", "idps": ["okta", f"oidc-{i % 4}"],
        "when": {"groups": {"contains": f"aws-team-{i}"}, "email_verified": {"equals": True}},
        "grant": [{"role": f"arn:aws:iam::{account}:role/Team{i}", "duration": "1h",
                   "session_name": "{email}", "tags": {"team": "{claims.department}"}}],
    }
    if i % 10 == 0:
        rule.update(effect="deny", grant=None)
        del rule["grant"]
    return rule


def large_tree(tmp: Path, key: Path) -> Path:
    """broker.yaml with the repo's IdP files topped up to IDP_FILES with OIDC ones, and RULES rules."""
    idps = tmp / "idp_configs"
    shutil.copytree(ROOT / "idp_configs", idps)
    for n in range(IDP_FILES - len(list(idps.glob("*.yaml")))):
        _write(idps / f"oidc-{n}.yaml", {"id": f"oidc-{n}", "type": "oidc", "name": f"OIDC {n}",
                                         "issuer": f"https://idp{n}.example.com", "client_id": f"client-{n}",
                                         "client_secret": "${OKTA_CLIENT_SECRET}",
                                         "scopes": ["openid", "email", "groups"]})
    accounts = {f"{100000000000 + n:012d}": f"account-{n}" for n in range(50)}
    _write(tmp / "rules.yaml", {"version": 1, "accounts": accounts, "rules": [_rule(i) for i in range(RULES)]})
    return _write(tmp / "broker.yaml", {
        "public_url": "https://broker.example.com", "session": {"secret": "${BROKER_SESSION_SECRET}"},
        "store": {"url": "memory://"}, "keys": [{"kid": "k1", "file": str(key), "active": True}],
        "idp_configs": str(idps), "rules": str(tmp / "rules.yaml"), "audit": {"path": "-"}})


def example_tree(tmp: Path, key: Path) -> Path:
    """examples/config/broker.yaml as shipped, its relative paths made absolute and its key file the one generated."""
    data = yaml.safe_load((ROOT / "examples" / "config" / "broker.yaml").read_text())
    base = ROOT / "examples" / "config"
    data["keys"] = [{**k, "file": str(key)} for k in data["keys"]]
    data["idp_configs"] = str((base / data["idp_configs"]).resolve())
    data["rules"] = str((base / data["rules"]).resolve())
    return _write(tmp / "example" / "broker.yaml", data)


def cases(tmp: Path, compare: Path | None) -> list[Case]:
    key = tmp / "k1.pem"
    subprocess.run([sys.executable, "-m", "broker", "keys", "generate", "--out", str(key), "--bits", "2048"],
                   check=True, capture_output=True, cwd=ROOT, timeout=60)
    (tmp / "bare.py").write_text(BARE_APP)
    configs = {"example": example_tree(tmp, key), "large": large_tree(tmp / "large", key)}
    checkouts = [("", sys.executable, ROOT)]
    if compare is not None:
        checkouts.append((" (compare)", str(compare / ".venv" / "bin" / "python"), compare))
    found = [Case("bare", sys.executable, (str(tmp / "bare.py"), "{port}"), ROOT, tmp / "pycache")]
    for n, (suffix, python, src) in enumerate(checkouts):
        serve = ("-m", "broker", "serve", "--port", "{port}", "--config")
        found += [Case(name + suffix, python, (*serve, str(config)), src, tmp / f"pycache-{n}")
                  for name, config in configs.items()]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--compare", type=Path, help="another checkout (with its .venv), e.g. /work/main")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        found = cases(Path(tmp), args.compare)
        for case in found:  # uncounted: fills the bytecode caches (and the OS's file cache)
            time_to_ready(case)
        times: dict[str, list[float]] = {case.name: [] for case in found}
        cpu: dict[str, list[float]] = {case.name: [] for case in found}
        for _ in range(max(1, min(args.reps, 25))):
            for case in found:
                wall, used = time_to_ready(case)
                times[case.name].append(wall)
                cpu[case.name].append(used)
    median = {name: statistics.median(values) for name, values in times.items()}
    cpu_median = {name: statistics.median(values) for name, values in cpu.items()}
    print(f"{'':20} {'wall to /readyz 200':>28}   {'CPU used':>18}   (median of {len(times['bare'])} runs)")
    for name, value in median.items():
        print(f"{name:20} {value:6.3f} s {value / median['bare']:5.1f}x bare (min {min(times[name]):.3f})"
              f"   {cpu_median[name]:6.3f} s {cpu_median[name] / cpu_median['bare']:5.1f}x bare")
    ok = median["large"] < LARGE_TARGET and median["example"] < EXAMPLE_RATIO * median["bare"]
    print(f"targets: large < {LARGE_TARGET} s, example < {EXAMPLE_RATIO}x bare: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
