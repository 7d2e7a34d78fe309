"""`icon:` in an IdP file: a PNG or SVG beside it (at most 16 KiB), checked when the config loads, and shown
in the chooser as a data: URL in place of the initials badge."""

from __future__ import annotations

import base64
import re
import struct
import zlib
from pathlib import Path

import httpx
import pytest
import yaml

from broker.config import load_idps
from broker.connectors.idp_icon import MAX_BYTES, icon_data_url, icon_media_type
from broker.connectors.oidc_config import OidcIdpConfig
from broker.devstack.stack import DevStack
from broker.errors import ConfigError
from tests.web_shell.conftest import ICON_SVG


def png() -> bytes:
    """A real 1x1 PNG (signature, IHDR, IDAT, IEND), built here."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\x1f\x4f\xd8"))
            + chunk(b"IEND", b""))


def _idp_dir(tmp_path: Path, icon: str, content: bytes | None) -> Path:
    folder = tmp_path / "idps"
    (folder / "art").mkdir(parents=True)
    if content is not None:
        (folder / "art" / "logo").write_bytes(content)
    (folder / "corp.yaml").write_text(yaml.safe_dump({
        "id": "corp", "type": "oidc", "name": "Corp SSO", "issuer": "https://idp.example.com",
        "client_id": "c", "icon": icon}))
    return folder


@pytest.mark.parametrize("content", [png(), ICON_SVG.encode(), b'<?xml version="1.0"?>\n' + ICON_SVG.encode()])
def test_an_icon_beside_the_file_is_resolved_and_read(tmp_path: Path, content: bytes) -> None:
    [(idp_id, config)] = load_idps(_idp_dir(tmp_path, "art/logo", content), need_env=False).items()
    assert isinstance(config, OidcIdpConfig) and config.icon is not None
    assert idp_id == "corp" and config.icon == (tmp_path / "idps" / "art" / "logo").resolve()
    found = re.fullmatch(r"data:(image/png|image/svg\+xml);base64,([A-Za-z0-9+/=]+)", icon_data_url(config.icon))
    assert found is not None
    media, data = found.groups()
    assert base64.b64decode(data) == content and media == icon_media_type(content)


@pytest.mark.parametrize(("content", "problem"), [
    (None, "icon: no such file: {path}"),
    (b"<html><script>alert(1)</script></html>", "icon: icon {path} is neither a PNG nor an SVG file"),
    (b"GIF89a" + b"\x00" * 20, "icon: icon {path} is neither a PNG nor an SVG file"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * MAX_BYTES, "icon: icon {path} is 16392 bytes: at most 16384"),
])
def test_a_bad_icon_is_a_config_problem(tmp_path: Path, content: bytes | None, problem: str) -> None:
    folder = _idp_dir(tmp_path, "art/logo", content)
    with pytest.raises(ConfigError) as refused:
        load_idps(folder, need_env=False)
    [found] = refused.value.problems
    assert found.startswith(f"{folder / 'corp.yaml'}:")
    assert found.endswith(problem.format(path=(folder / "art" / "logo").resolve())), found


def test_the_chooser_shows_the_icon(shell_stack: DevStack) -> None:
    page = httpx.get(f"{shell_stack.broker_url}/").text
    expected = base64.b64encode(ICON_SVG.encode()).decode()
    assert (f'<a class="idp" href="/login/iconic">\n    <img class="badge" src="data:image/svg+xml;base64,{expected}" '
            'alt=""><span>Iconic IdP</span></a>') in page
