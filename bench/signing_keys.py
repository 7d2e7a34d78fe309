"""Signing cost: a SAML assertion minted (built, signed, serialized) against a raw RSA sign with the same key
and a JWT signed with it, all in the same run; and one KMS Sign (through the strict local AWS on loopback:
moto's KMS behind the front, so an HTTP round trip and moto's signing, not AWS's latency) beside them.

    python -m bench.signing_keys

Rounds are interleaved and each variant's best per-call time kept. The target (issue 17): a SAML mint within
2x the raw RSA sign. The previous signing path (python-xmlsec loading the PEM key and certificate on every
call) is shown for scale.
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import xmlsec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from broker.devstack.local_aws import run_local_aws
from broker.issuers.key_sources import LocalSigner
from broker.issuers.saml_assertion import SAML_NS, AssertionContent, build_response, signed_response
from broker.issuers.saml_idp import SamlKey, load_saml_keys
from broker.issuers.signing import KeyRing, generate_key_file
from broker.settings import KeyConfig, KmsKeyConfig

ROUNDS, CALLS, KMS_CALLS, MAX_SECONDS = 25, 40, 20, 60.0
ACCOUNT = "330987654321"
PROVIDER = f"arn:aws:iam::{ACCOUNT}:saml-provider/p"
CONTENT = AssertionContent(issuer="https://b.example.com/saml/idp", name_id="dev:alice", partition="aws",
                           recipient="https://signin.aws.amazon.com/saml",
                           roles=((f"arn:aws:iam::{ACCOUNT}:role/r", PROVIDER),), session_name="alice@example.com",
                           session_duration=3600, tags={"team": "platform"})
CLAIMS = {"iss": "https://b.example.com", "sub": "dev:alice", "aud": "sts.amazonaws.com", "iat": 1, "exp": 2}


def per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def previous_path(key: SamlKey, pem: bytes) -> Callable[[], object]:
    """The signing code before issue 17: PEM key and certificate parsed by xmlsec on every assertion."""
    def mint() -> object:
        response = build_response(CONTENT, now=datetime.now(UTC), lifetime=timedelta(minutes=5))
        assertion = response.find(f"{{{SAML_NS}}}Assertion")
        signature = xmlsec.template.create(assertion, xmlsec.constants.TransformExclC14N,
                                           xmlsec.constants.TransformRsaSha256, ns="ds")
        assertion.insert(1, signature)
        ref = xmlsec.template.add_reference(signature, xmlsec.constants.TransformSha256, uri="#" + assertion.get("ID"))
        xmlsec.template.add_transform(ref, xmlsec.constants.TransformEnveloped)
        xmlsec.template.add_transform(ref, xmlsec.constants.TransformExclC14N)
        xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
        xmlsec.tree.add_ids(assertion, ["ID"])
        signer = xmlsec.Key.from_memory(pem, xmlsec.constants.KeyDataFormatPem)
        signer.load_cert_from_memory(key.cert_pem, xmlsec.constants.KeyDataFormatCertPem)
        context = xmlsec.SignatureContext()
        context.key = signer
        context.sign(signature)
        return copy.copy(response)
    return mint


def local_variants(workdir: Path) -> dict[str, Callable[[], object]]:
    file = workdir / "k.pem"
    generate_key_file(file, bits=2048)
    cfg = KeyConfig(kid="k", file=file, active=True)
    _, key = load_saml_keys([cfg])
    assert key is not None and isinstance(key.signer, LocalSigner)
    assert isinstance(key.signer.private, rsa.RSAPrivateKey)
    private, ring, signed_info = key.signer.private, KeyRing.load([cfg]), b"x" * 900  # a SignedInfo's size
    now = datetime.now(UTC)
    return {
        "raw RSA sign (same key)": lambda: private.sign(signed_info, padding.PKCS1v15(), hashes.SHA256()),
        "SAML mint": lambda: signed_response(CONTENT, key, now=now, lifetime=timedelta(minutes=5)),
        "JWT sign": lambda: ring.sign(CLAIMS),
        "SAML mint, previous path": previous_path(key, file.read_bytes()),
    }


def measure(variants: dict[str, Callable[[], object]], calls: int, deadline: float) -> dict[str, float]:
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(ROUNDS):
        for name, fn in variants.items():
            best[name] = min(best[name], per_call(fn, calls))
        if time.monotonic() > deadline:
            break
    return best


def kms_cost(deadline: float) -> dict[str, float]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with run_local_aws(account_id=ACCOUNT) as aws:
        import boto3

        kms = boto3.client("kms", endpoint_url=aws.endpoint_url, region_name="us-east-1")
        key_id = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
        cfg = KeyConfig(kid="kms", kms=KmsKeyConfig(key_id=key_id, region="us-east-1",
                                                     endpoint_url=aws.endpoint_url), active=True)
        ring = KeyRing.load([cfg])
        _, key = load_saml_keys([cfg])
        assert key is not None
        now = datetime.now(UTC)
        return measure({"JWT sign via KMS (local)": lambda: ring.sign(CLAIMS),
                        "SAML mint via KMS (local)": lambda: signed_response(CONTENT, key, now=now,
                                                                            lifetime=timedelta(minutes=5))},
                       KMS_CALLS, deadline)


def main() -> int:
    deadline = time.monotonic() + MAX_SECONDS
    with tempfile.TemporaryDirectory() as tmp:
        results = measure(local_variants(Path(tmp)), CALLS, deadline)
    results |= kms_cost(deadline + 30)
    raw = results["raw RSA sign (same key)"]
    print(f"{'signing (RSA 2048)':<30}{'ms/call':>10}{'x raw sign':>12}")
    for name, seconds in results.items():
        print(f"{name:<30}{seconds * 1000:>10.3f}{seconds / raw:>12.2f}")
    ratio = results["SAML mint"] / raw
    print(f"SAML mint / raw RSA sign = {ratio:.2f} (target <= 2.00)")
    return 0 if ratio <= 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
