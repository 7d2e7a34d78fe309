"""`sts-broker demo`: the embedded stack for a person to try, or `--self-test` to check it unattended."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

from broker.devstack.demo_ports import USAGE_ERROR, port_problem
from broker.devstack.dev_saml_idp import DevSamlIdp
from broker.devstack.selftest import self_test
from broker.devstack.stack import DevStack, run_stack
from broker.logs import quiet_chatty_loggers

_BINDING_NAMES = {"redirect": "HTTP-Redirect", "post": "HTTP-POST only"}
SAML_POST_NAME = f"{DevSamlIdp.name} via HTTP-POST"


def _banner(stack: DevStack, started: float) -> str:
    return f"""
sts-broker demo is running (started in {time.monotonic() - started:.1f}s), all on 127.0.0.1:
  broker           {stack.broker_url}
  OIDC provider    {stack.idp_issuer}   (oidc-provider-mock; users alice, bob, carol)
  SAML IdP         {stack.saml_idp_url}   (pysaml2 behind a login form; the same users; AuthnRequest by
                   {_BINDING_NAMES[stack.saml_binding]}, and by HTTP-POST through "{SAML_POST_NAME}")
  strict local AWS {stack.aws.endpoint_url}   (STS/IAM/S3; federation at {stack.aws.federation_url})
  config           {stack.workdir}/broker.yaml   audit log {stack.audit_path}

Open {stack.broker_url}/ , choose "Development IdP" (OIDC) or a "Development SAML IdP", type alice (40
roles in 12 accounts, among them DemoAudit in the spoke account through a role chain from DemoDeveloper), bob
(one) or carol (none), then "Open console" or "Get credentials". Press Ctrl-C to stop.
"""


def run_demo(args: argparse.Namespace) -> int:
    started = time.monotonic()
    quiet_chatty_loggers()
    if args.self_test:
        logging.getLogger("broker.access").setLevel(logging.WARNING)  # the self-test prints its own story
        logging.getLogger("oidc_provider_mock").setLevel(logging.WARNING)
        logging.getLogger("saml2").setLevel(logging.WARNING)
        with (tempfile.TemporaryDirectory(prefix="sts-broker-selftest-") as tmp,
              run_stack(Path(tmp), saml_binding=args.saml_binding) as stack):
            print(f"stack up in {time.monotonic() - started:.1f}s", flush=True)
            return self_test(stack)
    problem = port_problem(args)
    if problem is not None:
        print(f"sts-broker demo: {problem}", file=sys.stderr)
        return USAGE_ERROR
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    with run_stack(workdir.resolve(), broker_port=args.port, idp_port=args.idp_port, saml_port=args.saml_port,
                   aws_port=args.aws_port, saml_binding=args.saml_binding) as stack:
        print(_banner(stack, started), flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping")
    return 0
