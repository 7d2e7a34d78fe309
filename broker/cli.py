"""sts-broker serve | check | keys generate|rotate | rules check|explain|test | demo [--self-test], and the client
subcommands (login, credential-process, exec, configure, ...: broker/client/).

The client subcommands are dispatched first, before anything of the server is imported: `sts-broker
credential-process` runs before every `aws` call, so this module imports only what that path needs at the
top, and the server's modules (even argparse's Path type and logging) inside the functions that use them."""

from __future__ import annotations

import sys

from broker.client.main import COMMANDS as CLIENT_COMMANDS

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads the name)
if TYPE_CHECKING:
    import argparse
    from pathlib import Path
    from typing import Any

    from starlette.applications import Starlette


def _check(config: Path) -> int:
    from broker.config_check import check_config

    problems = check_config(config)
    if problems:
        print(f"{len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"{config}: OK")
    return 0


def _serve(config: Path, host: str, port: int, forwarded_allow_ips: str | None = None,
           shutdown: tuple[float, int] = (0.0, 25)) -> int:
    from broker.config import load_settings
    from broker.errors import ConfigError
    from broker.web.app import create_app, settle_heap
    from broker.web.proxy import parse_trusted

    try:
        trusted = parse_trusted(forwarded_allow_ips) if forwarded_allow_ips is not None else ()
    except ValueError as exc:
        print(f"refusing to start, --forwarded-allow-ips: {exc}", file=sys.stderr)
        return 2
    try:
        settings = load_settings(config)
        app = create_app(settings, trusted_proxies=trusted)
    except ConfigError as exc:
        from broker.config_check import check_config

        print("refusing to start, the configuration is invalid:", file=sys.stderr)
        for problem in check_config(config) or exc.problems:  # every problem of every file, as `check` lists
            print(f"  {problem}", file=sys.stderr)
        return 2
    settle_heap()
    return _run(app, host, port, settings.metrics.listen, shutdown)


def _run(app: Starlette, host: str, port: int, metrics_listen: str | None,
         shutdown: tuple[float, int] = (0.0, 25)) -> int:
    import asyncio

    import uvicorn

    from broker.seams.uvicorn import DrainingServer, HttpProtocol, exit_code_0_after_signal
    from broker.settings import split_listen
    from broker.web.app import metrics_app
    from broker.web.draining import ShutdownGate

    # uvicorn's access log prints query strings, which carry authorization codes: the app logs its own.
    # X-Forwarded-For is believed only from the load balancers named, and only as an IP address (the app's
    # ForwardedFor middleware, not uvicorn's proxy headers): the client address keys the rate limits and
    # the audit log, and any client can send the header.
    common: dict[str, Any] = {"access_log": False, "log_level": "info", "ws": "none", "proxy_headers": False}
    # SIGTERM: /readyz 503 at once, the listener open `drain` more seconds, then in-flight requests get up to
    # the deadline (broker/web/draining.py, DrainingServer).
    drain, deadline = shutdown
    gate = ShutdownGate(app)
    main = uvicorn.Config(gate, host=host, port=port, http=HttpProtocol, timeout_graceful_shutdown=deadline, **common)
    servers: list[uvicorn.Server] = [DrainingServer(main, drain, gate.start_draining)]
    if metrics_listen is not None:
        metrics_host, metrics_port = split_listen(metrics_listen)
        servers.insert(0, uvicorn.Server(uvicorn.Config(metrics_app(app), host=metrics_host, port=metrics_port,
                                                        lifespan="off", **common)))

    async def serve_all() -> None:
        # Each server takes SIGINT/SIGTERM over from the one started before it and, once shut down, hands
        # the signal back: the main server (started last) stops first, then the metrics listener.
        await asyncio.gather(*(server.serve() for server in servers))

    asyncio_run = asyncio.Runner(loop_factory=main.get_loop_factory())
    with asyncio_run, exit_code_0_after_signal():
        asyncio_run.run(serve_all())
    return 0 if all(server.started for server in servers) else 3


def _keys_generate(out: Path, bits: int, group: str | None = None) -> int:
    from broker.issuers.signing import generate_key_file
    from broker.key_files import share_with_group

    try:
        generate_key_file(out, bits)
    except FileExistsError:
        print(f"{out} exists; refusing to overwrite a key", file=sys.stderr)
        return 1
    mode = "mode 600"
    if group is not None:
        try:
            mode = share_with_group(out, group)
        except (LookupError, PermissionError) as exc:
            out.unlink()
            print(f"--group {group}: {exc}; no key written", file=sys.stderr)
            return 1
    print(f"wrote {out} (RSA {bits}, {mode}); add it under keys: in broker.yaml")
    return 0


def _keys_rotate(args: argparse.Namespace) -> int:
    from broker.config import load_settings
    from broker.errors import ConfigError
    from broker.keys_rotate import rotate
    from broker.settings import KmsKeyConfig

    try:
        kms = (KmsKeyConfig(key_id=args.kms_key_id, region=args.kms_region) if args.kms_key_id else None)
        step = rotate(load_settings(args.config), kms=kms)
    except ConfigError as exc:
        print("\n".join(["keys rotate: nothing changed:", *exc.problems]), file=sys.stderr)
        return 2
    print("\n".join(step.lines), file=sys.stderr if step.status else sys.stdout)
    return step.status


def _rules(args: argparse.Namespace) -> int:
    from broker import cli_rules

    if args.rules_command == "check":
        return cli_rules.check(args.file, args.idp_configs)
    if args.rules_command == "explain":
        return cli_rules.explain(args.file, args.identity)
    return cli_rules.test(args.file)


def _parser() -> argparse.ArgumentParser:
    import argparse
    from pathlib import Path

    from broker.client.main import add_commands
    from broker.serve_options import add_config, serve_defaults

    parser = argparse.ArgumentParser(prog="sts-broker", description="Federation identity broker for AWS")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the broker")
    serve_defaults(serve)
    serve.add_argument("--forwarded-allow-ips", metavar="ADDRESSES",
                       help="comma-separated addresses or networks (CIDR) of the load balancers whose "
                            "X-Forwarded-For and X-Forwarded-Proto to trust; default: trust none")
    check = sub.add_parser("check", help="validate broker.yaml, idp_configs/ and the rules file")
    add_config(check)
    keys = sub.add_parser("keys", help="signing keys").add_subparsers(dest="keys_command", required=True)
    gen = keys.add_parser("generate", help="write a new RSA signing key")
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--bits", type=int, choices=[2048, 3072, 4096], default=3072)
    gen.add_argument("--group", metavar="GROUP", help="group name or id that may read the key (mode 640), e.g. "
                                                      "10001 for the container image's user")
    rotate = keys.add_parser("rotate", help="the next step of a key rotation: publish a new key, make it sign, "
                                            "retire the old one (README: Key rotation)")
    rotate.add_argument("--config", type=Path, default=Path("broker.yaml"))
    rotate.add_argument("--kms-key-id", help="publish this KMS key (SIGN_VERIFY) instead of generating a key file")
    rotate.add_argument("--kms-region")
    rules = sub.add_parser("rules", help="check, explain and test a rules file").add_subparsers(
        dest="rules_command", required=True)
    rcheck = rules.add_parser("check", help="schema problems and warnings (shadowed rules, unknown claims, ...)")
    rcheck.add_argument("file", type=Path)
    rcheck.add_argument("--idp-configs", type=Path, help="to check that templates name claims the IdPs provide")
    rexplain = rules.add_parser("explain", help="each rule's outcome for one identity, then the grants")
    rexplain.add_argument("file", type=Path)
    rexplain.add_argument("--identity", type=Path, required=True, help="identity as JSON or YAML")
    rtest = rules.add_parser("test", help="run the test cases in the file and in FILE.tests.yaml")
    rtest.add_argument("file", type=Path)
    demo = sub.add_parser("demo", help="broker + development OIDC provider + strict local AWS on loopback",
                          description="The broker with a development OIDC provider, a development SAML IdP and a "
                                      "strict local AWS, all on 127.0.0.1, for a person to try in a browser.")
    demo.add_argument("--self-test", action="store_true",
                      help="run the whole login unattended on free ports, print what happened, then exit")
    from broker.devstack.demo_ports import add_port_flags  # standard library only: no devstack extra needed

    add_port_flags(demo)
    demo.add_argument("--workdir", type=Path, default=Path(".demo"),
                      help="where the demo writes its config, keys, rules and audit log (default .demo)")
    demo.add_argument("--saml-binding", choices=["redirect", "post"], default="redirect",
                      help="how the AuthnRequest reaches the demo's SAML IdP: post makes that IdP publish only "
                           "HTTP-POST (as OneLogin and Google do); the devsamlpost entry always uses HTTP-POST")
    sub.add_parser("healthcheck", help="probe the local broker (container health check; --help for options)")
    add_commands(sub)  # for --help only: main() hands these to broker/client/ before parsing
    return parser


def configure_logging() -> None:
    """What every command logs: INFO and up (the access log included) to stderr."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if words and words[0] == "healthcheck":  # the container probe: standard library only, no server import
        from broker.healthcheck import main as healthcheck

        return healthcheck(words[1:])
    if words and words[0] in CLIENT_COMMANDS:
        from broker.client.main import main as client_main

        return client_main(words)
    from broker.warmup import skip_pydantic_plugins

    skip_pydantic_plugins()
    args = _parser().parse_args(words)
    configure_logging()
    if args.command == "check":
        return _check(args.config)
    if args.command == "serve":
        return _serve(args.config, args.host, args.port, args.forwarded_allow_ips, (args.drain, args.shutdown_deadline))
    if args.command == "keys" and args.keys_command == "rotate":
        return _keys_rotate(args)
    if args.command == "keys":
        return _keys_generate(args.out, args.bits, args.group)
    if args.command == "rules":
        return _rules(args)
    from broker.devstack.demo import run_demo

    return run_demo(args)


if __name__ == "__main__":
    sys.exit(main())
