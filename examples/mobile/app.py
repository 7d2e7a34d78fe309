"""The app's side of token exchange, as a mobile or single-page app would do it (here in Python):

1. sign the user in at the identity provider (authorization code + PKCE) and keep the ID token;
2. POST it to the broker's /oauth2/token (RFC 8693) and receive AWS credentials for one role;
3. use them: list the user's own S3 prefix.

No AWS secret ships with the app. Run `python examples/mobile/run_local.py` for the whole thing on loopback.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import secrets
import sys
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import boto3
import httpx

REDIRECT_URI = "com.example.app:/oauth2redirect"  # a mobile app's custom-scheme redirect
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105 - a type URI


def sign_in(issuer: str, client_id: str, user: str) -> str:
    """Authorization code + PKCE at the provider; returns the ID token. (The local test provider stands in
    for the Google Sign-In SDK, which hands the app an ID token the same way. It insists on client
    authentication, so a throwaway secret goes along; a real public client sends none.)"""
    with httpx.Client(timeout=10) as http:
        meta = http.get(f"{issuer}/.well-known/openid-configuration").json()
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
                           "scope": "openid email", "state": state, "nonce": nonce,
                           "code_challenge": challenge, "code_challenge_method": "S256"})
        # The provider's login page, answered as the user would (the mock takes the user id as a form field).
        answer = http.post(f"{meta['authorization_endpoint']}?{query}", data={"sub": user})
        params = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}
        if params.get("state") != state:
            raise RuntimeError("the provider answered another sign-in")
        tokens = http.post(meta["token_endpoint"], auth=(client_id, "unused"), data={
            "grant_type": "authorization_code", "code": params["code"], "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier}).json()
        id_token: str = tokens["id_token"]
        return id_token


def exchange(broker: str, id_token: str, role: str | None = None) -> dict[str, Any]:
    """RFC 8693 token exchange at the broker. Errors come back as RFC 6749 JSON: raise with them."""
    form = {"grant_type": GRANT_TYPE, "subject_token": id_token, "subject_token_type": ID_TOKEN}
    if role:
        form["resource"] = role
    response = httpx.post(f"{broker}/oauth2/token", data=form, timeout=20)
    body: dict[str, Any] = response.json()
    if response.status_code != 200:
        raise RuntimeError(f"token exchange refused: {body['error']}: {body['error_description']} "
                           f"(error id {body['error_id']})")
    return body


def list_prefix(credentials: dict[str, str], bucket: str, prefix: str, endpoint: str | None) -> list[str]:
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint,
                      aws_access_key_id=credentials["AccessKeyId"],
                      aws_secret_access_key=credentials["SecretAccessKey"],
                      aws_session_token=credentials["SessionToken"])
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--issuer", required=True, help="the identity provider the app signs in with")
    parser.add_argument("--client-id", default="mobile-app")
    parser.add_argument("--user", default="alice")
    parser.add_argument("--bucket", default="user-data")
    parser.add_argument("--aws-endpoint", default=None, help="S3 endpoint (the local AWS); default: AWS")
    args = parser.parse_args(argv)
    id_token = sign_in(args.issuer, args.client_id, args.user)
    answer = exchange(args.broker, id_token)
    print(f"role {answer['role_arn']}, credentials for {answer['expires_in']} s "
          f"(access key {answer['Credentials']['AccessKeyId']})")
    for key in list_prefix(answer["Credentials"], args.bucket, f"users/{args.user}/", args.aws_endpoint):
        print(f"  s3://{args.bucket}/{key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
