"""`sts-broker credential-process` runs before every `aws` call: from a warm cache it must load nothing of the
server (starlette, pydantic, httpx, lxml, boto3, yaml, ...) and none of the costly standard modules it
avoids on purpose. Checked on the real console script with `python -X importtime`, which lists every module
a process imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from broker.client import state
from tests.client.conftest import warm

SCRIPT = Path(sys.executable).with_name("sts-broker")
SERVER_STACK = {"starlette", "pydantic", "httpx", "lxml", "boto3", "botocore", "yaml", "jinja2", "authlib",
                "joserfc", "cryptography", "orjson", "uvicorn", "onelogin", "xmlsec"}
# Standard modules this path is written to avoid: each costs a noticeable part of the start-up budget.
AVOIDED = {"argparse", "typing", "dataclasses", "inspect", "hashlib", "urllib.request", "http.client", "ssl",
           "email", "datetime", "keyring", "broker.errors", "broker.client.http", "broker.client.login"}


def imported(*args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    done = subprocess.run([sys.executable, "-X", "importtime", str(SCRIPT), *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    modules = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    return done, modules


def test_warm_credential_process_imports_nothing_heavy(session: state.SessionInfo) -> None:
    role = "arn:aws:iam::111122223333:role/Dev"
    warm(session, role)
    done, modules = imported("credential-process", "--role", role, env=dict(os.environ))
    assert done.returncode == 0 and '"AccessKeyId": "ASIACACHED"' in done.stdout
    assert "broker.client.cache" in modules  # the listing works: it names what did run
    top = {m.split(".")[0] for m in modules}
    assert top & SERVER_STACK == set()
    assert modules & AVOIDED == set()


def test_the_check_sees_the_server_stack_when_it_is_there(home: Path) -> None:
    """The same listing of a server command does name the stack: the test above can fail."""
    done, modules = imported("check", "--config", str(home / "missing.yaml"), env=dict(os.environ))
    assert done.returncode != 0 and {"pydantic", "yaml"} <= {m.split(".")[0] for m in modules}


def test_the_client_package_imports_only_the_standard_library_and_itself() -> None:
    import ast

    import broker.client

    allowed_third_party = {"keyring"}  # optional, imported only when installed
    for file in Path(broker.client.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                top = name.split(".")[0]
                assert (name.startswith("broker.client") or top in sys.stdlib_module_names
                        or top in allowed_third_party or name == "__future__"), f"{file.name} imports {name}"
