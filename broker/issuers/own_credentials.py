"""The broker's own AWS credentials, for the paths that sign with them: AssumeRole without `from:` and
GetFederationToken. Found as every AWS SDK finds them (botocore's standard credential chain: environment,
shared credentials file and profile, web-identity token file, container, instance role), optionally from a
named profile and credentials file (`aws.credentials_profile`, `aws.credentials_file`).

The chain is resolved on first use, in a worker thread: with no credentials configured it probes the instance
metadata service, which should cost a broker that never uses these paths nothing. Refreshable credentials
(a role, a container) refresh in a worker thread too; the event loop never waits on that I/O.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio.to_thread

from broker.errors import StsUnavailable
from broker.issuers.credentials import CallerKeys

if TYPE_CHECKING:  # botocore is imported on first use, off the start path (broker/warmup.py preloads it)
    from botocore.credentials import Credentials as BotoCredentials

RETRY_AFTER = 60.0  # seconds before a failed chain walk (which may probe the metadata service) is tried again


def missing(detail: str) -> StsUnavailable:
    return StsUnavailable(detail, reason="broker_credentials_missing",
                          public="The broker has no AWS credentials of its own, which this role needs.")


class OwnCredentials:
    def __init__(self, *, profile: str | None = None, credentials_file: Path | None = None) -> None:
        self._profile, self._file = profile, credentials_file
        self._resolved: BotoCredentials | None = None
        self._failed: tuple[float, str] | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"OwnCredentials(profile={self._profile!r}, resolved={self._resolved is not None})"

    async def current(self) -> CallerKeys:
        from botocore.credentials import RefreshableCredentials

        found = self._resolved or await self._resolve()
        if isinstance(found, RefreshableCredentials) and found.refresh_needed():
            frozen = await anyio.to_thread.run_sync(found.get_frozen_credentials)
        else:
            frozen = found.get_frozen_credentials()
        return CallerKeys(frozen.access_key, frozen.secret_key, frozen.token or None)

    async def _resolve(self) -> BotoCredentials:
        async with self._lock:  # one chain walk, however many requests arrive first
            if self._resolved is not None:
                return self._resolved
            if self._failed is not None and time.monotonic() - self._failed[0] < RETRY_AFTER:
                raise missing(self._failed[1])
            try:
                self._resolved = await anyio.to_thread.run_sync(self._chain)
            except StsUnavailable as exc:
                self._failed = (time.monotonic(), exc.detail)
                raise
            return self._resolved

    def _chain(self) -> BotoCredentials:
        import botocore.session
        from botocore.exceptions import BotoCoreError

        try:
            session = botocore.session.Session(profile=self._profile)
            if self._file is not None:
                session.set_config_variable("credentials_file", str(self._file))
            found = session.get_credentials()
        except BotoCoreError as exc:
            raise missing(f"the AWS credential chain failed: {type(exc).__name__}") from None
        if found is None:
            raise missing("the AWS credential chain found no credentials")
        return found
