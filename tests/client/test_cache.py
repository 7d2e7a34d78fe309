"""The credential cache: what it hands out, when it refreshes (botocore's refresh windows), and the files it
refuses to trust: each refused with one line on stderr, then fetched again and replaced."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from broker.client import cache, state
from tests.client.conftest import credentials, warm

ROLE = "arn:aws:iam::111122223333:role/Dev"


class Fetch:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> dict[str, object]:
        self.calls += 1
        return credentials(f"ASIAFETCHED{self.calls}", time.time() + 3600)


def get(info: state.SessionInfo, fetch: Fetch, role: str = ROLE) -> dict[str, object]:
    return cache.credentials(state.dirs().cache, info, role, None, fetch)


def test_warm_cache_is_served_without_fetching(session: state.SessionInfo) -> None:
    warm(session, ROLE)
    fetch = Fetch()
    assert get(session, fetch)["AccessKeyId"] == "ASIACACHED"
    assert fetch.calls == 0


@pytest.mark.parametrize(("lifetime", "left", "refreshed"), [
    (3600, 17 * 60, False),  # more than botocore's 15-minute advisory window (+1 minute) left
    (3600, 15 * 60, True),   # botocore would ask again on every call: refresh now
    (900, 8 * 60, False),    # a 15-minute role: served while more than half its life is left...
    (900, 7 * 60, True),     # ...not refreshed on every call, refreshed past half
    (900, -1, True),         # expired
])
def test_refresh_windows(session: state.SessionInfo, lifetime: int, left: int, refreshed: bool) -> None:
    warm(session, ROLE, lifetime=lifetime, left=left)
    fetch = Fetch()
    got = get(session, fetch)
    assert (fetch.calls, got["AccessKeyId"] != "ASIACACHED") == (int(refreshed), refreshed)


def test_refreshed_credentials_are_written_back(session: state.SessionInfo) -> None:
    fetch = Fetch()
    get(session, fetch)
    again = get(session, fetch)
    assert (fetch.calls, again["AccessKeyId"]) == (1, "ASIAFETCHED1")
    assert os.stat(cache.cache_file(state.dirs().cache, ROLE, None)).st_mode & 0o777 == 0o600


def _refused(session: state.SessionInfo, capsys: pytest.CaptureFixture[str], path: str) -> str:
    fetch = Fetch()
    assert get(session, fetch)["AccessKeyId"] == "ASIAFETCHED1"
    assert fetch.calls == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"sts-broker: ignoring the credential cache file {path}")
    assert get(session, Fetch())["AccessKeyId"] == "ASIAFETCHED1"  # replaced by a good one
    return err


@pytest.mark.parametrize("content", [b"\x00\xff garbage", b"[]", b'{"v": 1}', b'{"v": 2, "credentials": {}}'])
def test_corrupted_cache_file_is_refused_and_replaced(session: state.SessionInfo, capsys: pytest.CaptureFixture[str],
                                                      content: bytes) -> None:
    path = warm(session, ROLE)
    Path(path).write_bytes(content)
    _refused(session, capsys, path)


@pytest.mark.parametrize("field", ["session_id", "broker", "role"])
def test_cache_file_of_another_session_broker_or_role_is_refused(
        session: state.SessionInfo, capsys: pytest.CaptureFixture[str], field: str) -> None:
    path = warm(session, ROLE)
    data = json.loads(Path(path).read_text())
    data[field] = "https://evil.example.com" if field == "broker" else "someone-else"
    Path(path).write_text(json.dumps(data))
    assert "another session, broker or role" in _refused(session, capsys, path)


def test_cache_file_readable_by_others_is_refused(session: state.SessionInfo,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = warm(session, ROLE)
    os.chmod(path, 0o644)
    assert "readable or writable by others" in _refused(session, capsys, path)


def test_cache_file_owned_by_another_user_is_refused(session: state.SessionInfo,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = warm(session, ROLE)
    if os.getuid() == 0:
        os.chown(path, 65534, 65534)
    else:  # not root: a file we cannot chown; a copy of someone else's is what a symlink to it looks like
        os.unlink(path)
        os.symlink("/etc/hostname", path)
    assert "not " in _refused(session, capsys, path)


def test_symlink_planted_as_cache_file_is_refused_and_its_target_untouched(
        session: state.SessionInfo, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_text("keep me")
    path = warm(session, ROLE)
    os.unlink(path)
    os.symlink(target, path)
    assert "not a plain file" in _refused(session, capsys, path)
    assert target.read_text() == "keep me" and not os.path.islink(path)


def test_broker_answer_not_in_credential_process_form_is_refused(session: state.SessionInfo) -> None:
    from broker.client.errors import ClientError

    with pytest.raises(ClientError, match="not in credential_process form"):
        cache.credentials(state.dirs().cache, session, ROLE, None, lambda: {"Version": 1, "AccessKeyId": "x"})
    with pytest.raises(ClientError, match="already expired"):
        cache.credentials(state.dirs().cache, session, ROLE, None, lambda: credentials("X", time.time() - 5))


def test_roles_with_long_names_and_durations_get_their_own_files(session: state.SessionInfo) -> None:
    long_role = "arn:aws:iam::111122223333:role/" + "p/" * 120 + "Dev"
    names = {cache.cache_file("/c", ROLE, None), cache.cache_file("/c", ROLE, 900),
             cache.cache_file("/c", long_role, None), cache.cache_file("/c", ROLE + "x", None)}
    assert len(names) == 4 and all(len(os.path.basename(n)) < 255 for n in names)
