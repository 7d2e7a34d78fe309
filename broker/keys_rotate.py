"""`sts-broker keys rotate`: one step of a key rotation each time it runs, the state in the keys directory
(issuers/key_state.py) so every replica follows it (live_keys.py).

1. publish: a new key (a generated file, or `--kms-key-id`) is added published-only: in the JWKS and the SAML
   metadata, not signing. The metadata with both certificates is written beside the state for IAM.
2. activate (after the publish wait): the new key signs; the old one stays published, retiring.
3. retire (after the retire wait): the old key leaves the JWKS and the metadata.

The waits come from cache lifetimes: before activating, every relying party must have the new key (the JWKS
max-age the broker sends, a relying party's own JWKS cache, the replicas' poll of the state file); before
retiring, every token and assertion the old key signed must have expired (their lifetimes, clock skew, poll).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from broker.issuers.key_state import KeyState, read_state, seed, write_state
from broker.issuers.live_keys import LiveKeys
from broker.issuers.saml import DEFAULT_LIFETIME as SAML_LIFETIME
from broker.issuers.saml_idp import idp_metadata
from broker.issuers.signing import PUBLISHED_MAX_AGE, generate_key_file
from broker.settings import KeyConfig, KmsKeyConfig, Settings

JWKS_MAX_AGE = timedelta(seconds=PUBLISHED_MAX_AGE)  # the JWKS's and the metadata's Cache-Control max-age
METADATA_FILE = "saml-idp-metadata.xml"
SAML_PROVIDER_ARN = "arn:aws:iam::ACCOUNT_ID:saml-provider/NAME"


@dataclass(frozen=True)
class Step:
    lines: list[str]
    status: int = 0


def publish_wait(settings: Settings) -> timedelta:
    rotation = settings.key_rotation
    return max(JWKS_MAX_AGE, rotation.relying_party_cache) + rotation.poll


def retire_wait(settings: Settings) -> timedelta:
    rotation = settings.key_rotation
    return max(settings.issuer.token_lifetime, SAML_LIFETIME) + rotation.clock_skew + rotation.poll


def _at(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _new_key(directory: Path, now: float, kms: KmsKeyConfig | None) -> KeyConfig:
    kid = "k" + datetime.fromtimestamp(now, UTC).strftime("%Y%m%d%H%M%S")
    if kms is not None:
        return KeyConfig(kid=kid, kms=kms)
    file = directory / f"{kid}.pem"
    generate_key_file(file, bits=3072)
    return KeyConfig(kid=kid, file=file)


def _iam_steps(settings: Settings, state_file: Path, state: KeyState) -> list[str]:
    """Write the metadata the published keys give, and say how to hand it to IAM (which keeps its own copy)."""
    keys = LiveKeys(state.configs())
    metadata = state_file.parent / METADATA_FILE
    metadata.write_bytes(idp_metadata(settings.public_url, keys.saml_keys()))
    return [f"SAML: IAM keeps its own copy of the metadata; give it {metadata} (the certificates now published):",
            f"  aws iam update-saml-provider --saml-provider-arn {SAML_PROVIDER_ARN} \\",
            f"      --saml-metadata-document file://{metadata}",
            "OIDC (web identity): nothing to change in IAM; AWS fetches the JWKS from "
            f"{settings.public_url}/.well-known/jwks.json. The thumbprint IAM may list is the TLS certificate's "
            "of that host, not a signing key's: a key rotation does not change it."]


def _publish(settings: Settings, file: Path, state: KeyState, now: float, kms: KmsKeyConfig | None) -> Step:
    key = _new_key(file.parent, now, kms)
    after = now + publish_wait(settings).total_seconds()
    state = replace(state, keys=(*state.keys, key), next=key.kid, activate_after=after)
    LiveKeys(state.configs())  # the new key loads (a KMS key: SIGN_VERIFY, reachable) before it is published
    write_state(file, state)
    return Step([f"published {key.kid} (not signing yet); {state.active} still signs",
                 *_iam_steps(settings, file, state),
                 f"wait {publish_wait(settings)} (relying parties' JWKS caches), then run `sts-broker keys rotate` "
                 f"again after {_at(after)} to make {key.kid} sign"])


def _activate(settings: Settings, file: Path, state: KeyState, now: float) -> Step:
    assert state.next is not None and state.activate_after is not None
    if now < state.activate_after:
        return Step([f"{state.next} is published but not signing yet: relying parties may not have it until "
                     f"{_at(state.activate_after)}; run again then"], 1)
    after = now + retire_wait(settings).total_seconds()
    old = state.active
    write_state(file, replace(state, active=state.next, next=None, activate_after=None, retiring=old,
                              retire_after=after))
    return Step([f"{state.next} signs now; {old} stays published for the tokens it signed",
                 f"run `sts-broker keys rotate` again after {_at(after)} to retire {old}"])


def _retire(settings: Settings, file: Path, state: KeyState, now: float) -> Step:
    assert state.retiring is not None and state.retire_after is not None
    if now < state.retire_after:
        return Step([f"{state.retiring} may still have live tokens until {_at(state.retire_after)}; run again then"],
                    1)
    old = state.retiring
    state = replace(state.without(old), retiring=None, retire_after=None)
    write_state(file, state)
    return Step([f"retired {old}: no longer published (its key file or KMS key can be deleted once IAM has the "
                 "new metadata)", *_iam_steps(settings, file, state)])


def rotate(settings: Settings, *, now: float | None = None, kms: KmsKeyConfig | None = None) -> Step:
    """The next step of the rotation under way, or a new rotation."""
    file = settings.key_rotation.state_file
    if file is None:
        return Step(["key_rotation.state_file is not set in broker.yaml: set it to a file in the keys directory "
                     "every replica reads, e.g. `key_rotation: {state_file: keys/rotation.json}`"], 2)
    now = time.time() if now is None else now
    state = read_state(file) or seed(settings.keys)
    if state.next is not None:
        return _activate(settings, file, state, now)
    if state.retiring is not None:
        return _retire(settings, file, state, now)
    return _publish(settings, file, state, now, kms)
