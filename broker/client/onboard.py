"""`sts-broker login` and `sts-broker configure`: getting a CLI session, and AWS profiles that use it."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import time
from typing import Any

from broker.client import aws_config, cache, keystore, login, session, state
from broker.client.errors import ClientError
from broker.client.http import Broker


def login_command(args: argparse.Namespace) -> int:
    url = state.broker_url(args.broker)
    if not url:
        raise ClientError("no broker URL: pass --broker URL (or set STS_BROKER_URL)")
    broker = Broker(state.check_broker_url(url))
    answer = None
    if not args.device:
        opener = None if args.no_browser else login.browser_opener()
        if opener is not None or args.no_browser:
            answer = login.loopback(broker, opener)
    if answer is None:
        if not args.device:
            print("No usable browser here: signing in with a code instead.", file=sys.stderr)
        answer = login.device(broker)
    info = _keep(broker.url, answer)
    until = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(info.expires_at))
    print(f"Logged in to {broker.url} until {until}.", file=sys.stderr)
    return 0


def _keep(url: str, answer: dict[str, Any]) -> state.SessionInfo:
    token, expires_in, session_id = (answer.get(k) for k in ("access_token", "expires_in", "session_id"))
    if not (isinstance(token, str) and token and isinstance(expires_in, int) and isinstance(session_id, str)):
        raise ClientError("the broker's token answer is incomplete")
    old = _previous()
    if old is not None:
        _revoke_quietly(old)
        session.forget(old)
    dirs = state.dirs()
    cache.clear(dirs.cache)
    where = keystore.store(dirs.config, url, token)
    info = state.SessionInfo(broker=url, session_id=session_id, expires_at=time.time() + expires_in,
                             token_store=where)
    state.save_session(info)
    state.save_broker(url)
    return info


def _previous() -> state.SessionInfo | None:
    try:
        return state.load_session()
    except ClientError:  # an unreadable session file: the new login replaces it
        state.forget_session()
        return None


def _revoke_quietly(old: state.SessionInfo) -> None:
    """A new login ends the one before it on the broker too, so it does not linger on the portal."""
    try:
        token = keystore.load(state.dirs().config, old.broker, old.token_store)
        if token is not None and not old.ended():
            Broker(old.broker).send("POST", "/oauth2/revoke", form={"token": token})
    except ClientError:
        pass


def own_command() -> str:
    """How the AWS tools should run us: `sts-broker` when that is what PATH finds, else this script's path."""
    here = os.path.realpath(sys.argv[0]) if sys.argv and os.path.basename(sys.argv[0]) == "sts-broker" else None
    found = shutil.which("sts-broker")
    if here is None or (found is not None and os.path.realpath(found) == here):
        return "sts-broker"
    return shlex.quote(here)


def configure(args: argparse.Namespace) -> int:
    info = session.open_session(args.broker)
    answer = session.call(info, "GET", "/cli/roles")
    roles = [r for r in answer.get("roles") or [] if isinstance(r, dict)]  # type: ignore[attr-defined]
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    command = own_command()
    profiles = []
    for role in roles:
        settings = {"credential_process": aws_config.credential_process(command, str(role["role_arn"]))}
        if region:
            settings["region"] = region
        profiles.append(aws_config.Profile(aws_config.profile_name(args.prefix, role), settings))
    path = aws_config.config_path()
    try:
        with open(path, encoding="utf-8") as existing:
            old = existing.read()
    except FileNotFoundError:
        old = ""
    new, skipped = aws_config.merge(old, profiles)
    for name in skipped:
        print(f"sts-broker: left profile {name} alone: its credential_process is not sts-broker's",
              file=sys.stderr)
    if args.dry_run:
        sys.stdout.write(aws_config.diff(path, old, new))
        return 0
    if new != old:
        aws_config.write(path, new)
    print(f"{len(profiles) - len(skipped)} profile(s) in {path}: "
          + ", ".join(p.name for p in profiles if p.name not in skipped), file=sys.stderr)
    return 0
