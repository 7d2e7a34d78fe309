"""Store URLs for every Redis topology and the settings that complete them: what each parses to, where the
credentials come from, and that no secret is ever shown (repr, errors, the store's own description)."""

from __future__ import annotations

import re
import traceback
from pathlib import Path

import pytest
import yaml

from broker.config import load_settings
from broker.redis_cluster import ClusterPipe
from broker.redis_sentinel import SentinelPipe
from broker.redis_urls import RedisOptions, SingleNode, open_client, parse, without_secrets
from broker.settings import StoreConfig
from broker.store import RedisStore, open_store

PASSWORD = "url-pw-93c1e0"


def test_a_cluster_url_names_its_seed_nodes() -> None:
    mode, endpoints, service = parse(f"redis+cluster://app:{PASSWORD}@10.0.0.1:7000,10.0.0.2:7001")
    assert (mode, service) == ("cluster", None)
    assert [(e.host, e.port, e.username, e.password, e.db) for e in endpoints] == [
        ("10.0.0.1", 7000, "app", PASSWORD, 0), ("10.0.0.2", 7001, "app", PASSWORD, 0)]
    assert all(e.tls is None for e in endpoints)


def test_rediss_cluster_is_tls_on_every_node() -> None:
    _, endpoints, _ = parse("rediss+cluster://cfg.example:6379", RedisOptions(tls_server_name="cfg.example"))
    assert [e.tls is not None and e.server_name == "cfg.example" for e in endpoints] == [True]


def test_a_cluster_has_only_db_0() -> None:
    with pytest.raises(ValueError, match="a cluster has only db 0"):
        parse("redis+cluster://h:1/3")


def test_a_sentinel_url_names_sentinels_service_and_db() -> None:
    url = f"redis+sentinel://:{PASSWORD}@s1:26379,s2:26380/mymaster/4?sentinel_password=sentinel-pw-1"
    mode, endpoints, service = parse(url)
    *sentinels, primary = endpoints
    assert (mode, service) == ("sentinel", "mymaster")
    assert [(s.host, s.port, s.password, s.db) for s in sentinels] == [
        ("s1", 26379, "sentinel-pw-1", 0), ("s2", 26380, "sentinel-pw-1", 0)]
    assert (primary.password, primary.db) == (PASSWORD, 4)  # the data node's password, not the sentinels'


def test_a_sentinel_url_needs_its_service() -> None:
    with pytest.raises(ValueError, match="names its service"):
        parse("redis+sentinel://s1:26379")


def test_settings_complete_a_url_without_credentials_and_never_override_one() -> None:
    options = RedisOptions(username="broker", password=PASSWORD)
    _, [plain], _ = parse("redis://h:6379/2", options)
    assert (plain.username, plain.password, plain.db) == ("broker", PASSWORD, 2)
    _, [own], _ = parse("redis://other:their-pw@h:6379", options)
    assert (own.username, own.password) == ("other", "their-pw")
    _, [cluster_node], _ = parse("redis+cluster://h:1", options)
    assert (cluster_node.username, cluster_node.password) == ("broker", PASSWORD)


def test_tls_files_need_a_tls_url() -> None:
    with pytest.raises(ValueError, match="use rediss"):
        parse("redis+cluster://h:1", RedisOptions(tls_ca_file="/nowhere/ca.pem"))


@pytest.mark.parametrize(("url", "kind"), [("redis://h:1/0", SingleNode), ("unix:///run/r.sock", SingleNode),
                                           ("redis+cluster://h:1,h:2", ClusterPipe),
                                           ("redis+sentinel://h:1/svc", SentinelPipe)])
def test_each_scheme_gets_its_client(url: str, kind: type) -> None:
    assert isinstance(open_client(url), kind)
    assert isinstance(open_store(url), RedisStore)  # lazily: nothing needs to listen


@pytest.mark.parametrize("url", [
    f"redis+cluster://app:{PASSWORD}@h1:1,h2:2/?password={PASSWORD}",
    f"rediss+sentinel://:{PASSWORD}@s1:1,s2:2/svc?sentinel_password={PASSWORD}",
    f"redis://:{PASSWORD}@h:1/0"])
def test_no_secret_in_the_description_or_an_error(url: str) -> None:
    shown = without_secrets(url)
    assert PASSWORD not in shown and shown.split("://")[1].startswith(re.split(r"[@]", url)[1][:2])
    assert PASSWORD not in repr(RedisStore(url))
    with pytest.raises(ValueError) as caught:
        RedisStore(url + ("&" if "?" in url else "?") + f"bogus={PASSWORD}")
    text = "".join(traceback.format_exception(caught.value))
    assert "bogus" in text and PASSWORD not in text


def test_store_settings_resolve_tls_files_beside_broker_yaml(tmp_path: Path) -> None:
    config = tmp_path / "broker.yaml"
    config.write_text("public_url: https://broker.example.com\nsession: {secret: Kq8vZ2mX4pL7wR1tY9uB3nC6dF0gH5jA}\n"
                      "idp_configs: idps/\nrules: rules.yaml\nkeys: [{kid: k1, file: k1.pem, active: true}]\n"
                      "store:\n  url: rediss+cluster://cfg.example:6379\n  username: broker\n"
                      "  tls:\n    ca_file: certs/redis-ca.pem\n    cert_file: /etc/abs/client.pem\n")
    store = load_settings(config).store
    assert store.tls is not None and store.tls.ca_file == tmp_path / "certs" / "redis-ca.pem"
    assert store.tls.cert_file == Path("/etc/abs/client.pem")


def test_the_readme_example_is_valid() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("### Managed Redis"):]
    block = section[section.index("```yaml\n") + 8:section.index("```\n", section.index("```yaml"))]

    config = StoreConfig.model_validate(yaml.safe_load(block)["store"])
    assert config.url.get_secret_value().startswith("rediss+cluster://") and config.username == "sts-broker"
