"""The mobile example end to end on loopback: the strict local AWS (moto behind the STS contract checks),
the development OIDC provider standing in for Google, the broker with a `type: token` IdP, and the app.

    .venv/bin/python examples/mobile/run_local.py

What a platform team would do once is done here first: the token IdP file, the rules, an IAM role that
trusts the broker (sts:AssumeRoleWithWebIdentity + sts:TagSession), a bucket with two users' files.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent))

import app  # noqa: E402

from broker.devstack.servers import free_port  # noqa: E402
from broker.devstack.stack import AUDIENCE, aws_client, run_stack  # noqa: E402

ACCOUNT = "123456789012"
CLIENT_ID = "mobile-app"
FILES = {"users/alice/notes.txt": b"alice's notes", "users/alice/photo.jpg": b"...",
         "users/bob/diary.txt": b"bob's, not alice's"}


def token_idp(issuer: str) -> dict[str, object]:
    """idp_configs/devmobile.yaml: bearer ID tokens from the app's provider (the mock sends no azp)."""
    return {"id": "devmobile", "type": "token", "name": "Mobile app (dev provider)", "issuer": issuer,
            "client_ids": [CLIENT_ID], "require_email_verified": True}


def set_up_aws(stack_aws: object, broker_url: str) -> None:
    iam = aws_client(stack_aws, "iam")  # type: ignore[arg-type]
    host = broker_url.split("://", 1)[1]
    iam.create_role(RoleName="MobileS3", MaxSessionDuration=3600, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host}"},
            "Action": ["sts:AssumeRoleWithWebIdentity", "sts:TagSession"],
            "Condition": {"StringEquals": {f"{host}:aud": AUDIENCE}, "StringLike": {f"{host}:sub": "devmobile:*"}},
        }]}))
    s3 = aws_client(stack_aws, "s3")  # type: ignore[arg-type]
    s3.create_bucket(Bucket="user-data")
    for key, body in FILES.items():
        s3.put_object(Bucket="user-data", Key=key, Body=body)


def main() -> int:
    idp_port = free_port()
    issuer = f"http://127.0.0.1:{idp_port}"
    with tempfile.TemporaryDirectory() as work, run_stack(
            Path(work), idp_port=idp_port, rules=HERE / "rules.yaml",
            extra_idps={"devmobile": token_idp(issuer)}) as stack:
        set_up_aws(stack.aws, stack.broker_url)
        print(f"broker {stack.broker_url}, provider {issuer}, local AWS {stack.aws.endpoint_url}")
        print("$ app.py --user alice")
        return app.main(["--broker", stack.broker_url, "--issuer", issuer, "--client-id", CLIENT_ID,
                         "--user", "alice", "--aws-endpoint", stack.aws.endpoint_url])


if __name__ == "__main__":
    sys.exit(main())
