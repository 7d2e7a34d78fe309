"""The client's argument parser and the one place its errors become a line on stderr and an exit code."""

from __future__ import annotations

import sys
import types

from broker.client.errors import ClientError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads the name)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

COMMANDS = frozenset({"login", "logout", "status", "roles", "credential-process", "configure", "exec", "console"})


def _broker_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", metavar="URL", help="the broker (default: $STS_BROKER_URL, else the one "
                                                         "saved at login)")


def _quick(argv: list[str]) -> argparse.Namespace | None:
    """`credential-process --role R [--duration S] [--broker URL]`, as the profiles `configure` writes say
    it, parsed without argparse (which imports gettext, shutil and more: a tenth of the start-up budget).
    Anything else, --help or a mistake included, goes to argparse."""
    if argv[:1] != ["credential-process"] or len(argv) % 2 == 0:
        return None
    options = dict(zip(argv[1::2], argv[2::2], strict=True))
    if "--role" not in options or not set(options) <= {"--role", "--duration", "--broker"}:
        return None
    duration = options.get("--duration")
    if duration is not None and not duration.isdigit():
        return None
    found = types.SimpleNamespace(client_command="credential-process", role=options["--role"],
                                  broker=options.get("--broker"), duration=int(duration) if duration else None)
    return found  # type: ignore[return-value]  # the same attributes argparse would set


def _role_options(parser: argparse.ArgumentParser) -> None:
    _broker_option(parser)
    parser.add_argument("--role", required=True, help="role ARN, or a role name or alias unique to you")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    import argparse

    login = sub.add_parser("login", help="sign in through the browser (or with a code) and keep a CLI session")
    _broker_option(login)
    login.add_argument("--device", action="store_true", help="sign in with a code on another device")
    login.add_argument("--no-browser", action="store_true", help="print the sign-in URL instead of opening it")
    for name, text in (("logout", "end the CLI session (on the broker too) and forget cached credentials"),
                       ("status", "the CLI session: who, from which IdP, until when")):
        _broker_option(sub.add_parser(name, help=text))
    roles = sub.add_parser("roles", help="the roles you may use")
    _broker_option(roles)
    roles.add_argument("--json", action="store_true")
    cp = sub.add_parser("credential-process", help="credential_process JSON for AWS tools (cached per role)")
    _role_options(cp)
    cp.add_argument("--duration", type=int, metavar="SECONDS")
    conf = sub.add_parser("configure", help="write AWS config profiles for your roles")
    _broker_option(conf)
    conf.add_argument("--region")
    conf.add_argument("--prefix", default="", help="put before every profile name")
    conf.add_argument("--dry-run", action="store_true", help="print the change as a unified diff, write nothing")
    ex = sub.add_parser("exec", help="run a command with the role's credentials in its environment")
    _role_options(ex)
    ex.add_argument("--duration", type=int, metavar="SECONDS")
    ex.add_argument("--container", action="store_true",
                    help="give it a container-credentials URL and token instead (refreshed; for long jobs)")
    ex.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    con = sub.add_parser("console", help="open the AWS console as the role")
    _role_options(con)
    con.add_argument("--destination", metavar="PATH", help="console path, e.g. /s3/home")
    con.add_argument("--print", action="store_true", help="print the sign-in URL instead of opening it")


def _handler(command: str) -> Callable[[argparse.Namespace], int]:
    from broker.client import commands

    if command in ("login", "configure"):
        from broker.client import onboard

        return onboard.login_command if command == "login" else onboard.configure
    return {"logout": commands.logout, "status": commands.status, "roles": commands.roles,
            "credential-process": commands.credential_process, "exec": commands.exec_command,
            "console": commands.console}[command]


def _parse(argv: list[str]) -> argparse.Namespace:
    import argparse

    parser = argparse.ArgumentParser(prog="sts-broker")
    add_commands(parser.add_subparsers(dest="client_command", required=True))
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _quick(argv) or _parse(argv)
    try:
        return _handler(args.client_command)(args)
    except ClientError as exc:
        print(f"sts-broker: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # a file we cannot read or write: say which, no trace
        print(f"sts-broker: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
