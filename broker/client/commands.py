"""Each client subcommand: parsed arguments in, exit code out (errors raise ClientError)."""

from __future__ import annotations

import json
import os
import sys
import time

from broker.client import cache, session, state
from broker.client.session import call

TYPE_CHECKING = False  # without importing typing
if TYPE_CHECKING:
    import argparse
    from typing import Any


def credential_process(args: argparse.Namespace) -> int:
    print(json.dumps(credentials(args.broker, args.role, args.duration)))
    return 0


def credentials(broker: str | None, role: str, duration: int | None) -> dict[str, Any]:
    """credential_process JSON for `role`, from the cache while fresh."""
    info = session.open_session(broker)
    body: dict[str, object] = {"role": role}
    if duration is not None:
        body["duration_seconds"] = duration
    return cache.credentials(state.dirs().cache, info, role, duration,
                             lambda: call(info, "POST", "/cli/credentials", body))


def exec_command(args: argparse.Namespace) -> int:
    from broker.client.errors import ClientError

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise ClientError("exec: name the command to run after --")
    env = dict(os.environ)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                 "AWS_CREDENTIAL_EXPIRATION", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN"):
        env.pop(name, None)  # whatever the shell had must not shadow what this command is given
    env.update(_container_env(args) if args.container else _key_env(args))
    try:
        os.execvpe(command[0], command, env)  # noqa: S606 (no shell: the words as given). The exit code and signals are the command's own
    except OSError as exc:
        print(f"sts-broker: cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached


def _key_env(args: argparse.Namespace) -> dict[str, str]:
    creds = credentials(args.broker, args.role, args.duration)
    return {"AWS_ACCESS_KEY_ID": creds["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"], "AWS_CREDENTIAL_EXPIRATION": creds["Expiration"]}


def _container_env(args: argparse.Namespace) -> dict[str, str]:
    """A revocable container token: the SDKs fetch fresh credentials from the broker as they need them, so
    a job that runs longer than one set of credentials keeps working (while the session lasts)."""
    from broker.client.errors import ClientError

    answer = call(session.open_session(args.broker), "POST", "/cli/container-tokens", {"role": args.role})
    uri, token = answer.get("full_uri"), answer.get("token")
    if not (isinstance(uri, str) and isinstance(token, str)):
        raise ClientError("the broker's container token answer is incomplete")
    return {"AWS_CONTAINER_CREDENTIALS_FULL_URI": uri, "AWS_CONTAINER_AUTHORIZATION_TOKEN": token}


def console(args: argparse.Namespace) -> int:
    body: dict[str, object] = {"role": args.role}
    if args.destination:
        body["destination"] = args.destination
    url = call(session.open_session(args.broker), "POST", "/cli/console", body).get("url")
    if not isinstance(url, str):
        from broker.client.errors import ClientError

        raise ClientError("the broker's console answer has no URL")
    if not args.print:
        from broker.client.login import browser_opener

        opener = browser_opener()
        if opener is not None and opener(url):
            print("Opened the AWS console in the browser.", file=sys.stderr)
            time.sleep(0.5)  # let the opener thread start the browser before this process exits
            return 0
    print(url)
    return 0


def roles(args: argparse.Namespace) -> int:
    answer = call(session.open_session(args.broker), "GET", "/cli/roles")
    entries = [r for r in answer.get("roles") or [] if isinstance(r, dict)]  # type: ignore[attr-defined]
    if args.json:
        print(json.dumps(answer, indent=1))
        return 0
    rows = [("ACCOUNT", "ROLE", "DURATION", "ARN")] + [
        (f"{r.get('account_name') or '-'} ({r.get('account_id')})", str(r.get("alias") or r.get("role_name")),
         f"{int(r.get('duration_seconds') or 0) // 60} min", str(r.get("role_arn"))) for r in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
    for notice in answer.get("notices") or []:  # type: ignore[attr-defined]
        message = notice.get("message") if isinstance(notice, dict) else notice
        print(f"note: {message}", file=sys.stderr)
    return 0


def status(args: argparse.Namespace) -> int:
    info = session.open_session(args.broker)
    answer = call(info, "GET", "/cli/session")
    print(f"broker:   {info.broker}")
    for key in ("session_id", "idp", "subject", "email", "device_name", "created_at", "expires_at"):
        if answer.get(key) is not None:
            print(f"{key.replace('_', ' ') + ':':<13} {answer[key]}")
    return 0


def logout(args: argparse.Namespace) -> int:
    from broker.client import keystore

    info = state.load_session()
    if info is None:
        print("sts-broker: not logged in", file=sys.stderr)
        return 0
    from broker.client.errors import ClientError
    from broker.client.http import Broker

    try:  # still forget it here whatever happens; say so when the broker did not hear of it
        token = keystore.load(state.dirs().config, info.broker, info.token_store) if info.expires_at > 0 else None
        if token is not None:
            Broker(info.broker).send("POST", "/oauth2/revoke", form={"token": token})
    except ClientError as exc:
        print(f"sts-broker: {exc}; the session was forgotten here but not revoked", file=sys.stderr)
    session.forget(info)
    print(f"Logged out of {info.broker}.", file=sys.stderr)
    return 0
