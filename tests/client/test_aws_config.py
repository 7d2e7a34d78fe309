"""`sts-broker configure`'s edit of the AWS config file: our profiles added or updated in place, every other
byte of the file as it was, a same-named profile that belongs to another tool left alone."""

from __future__ import annotations

from broker.client import aws_config
from broker.client.aws_config import Profile

EXISTING = """# my settings
[default]
region = eu-west-1

[profile work-sso]
sso_session = corp
sso_account_id = 111122223333
  ; indented comment kept
[profile prod-Admin]
region = us-east-2
credential_process = /old/bin/sts-broker credential-process --role arn:aws:iam::1:role/Admin
output = json
[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
[profile prod-Reader]
credential_process = aws-vault export --format=json prod
"""


def _profile(name: str, arn: str, region: str = "eu-central-1") -> Profile:
    return Profile(name, {"credential_process": aws_config.credential_process("sts-broker", arn),
                          "region": region})


def test_merge_updates_ours_adds_new_and_leaves_everything_else() -> None:
    new, skipped = aws_config.merge(EXISTING, [
        _profile("prod-Admin", "arn:aws:iam::1:role/Admin"),
        _profile("prod-Reader", "arn:aws:iam::1:role/Reader"),
        _profile("dev-Dev", "arn:aws:iam::2:role/Dev")])
    assert skipped == ["prod-Reader"]  # aws-vault's profile: not ours
    assert new.startswith(EXISTING.split("[profile prod-Admin]")[0])  # default, work-sso, comments: same bytes
    assert ("[profile prod-Admin]\nregion = eu-central-1\n"
            "credential_process = sts-broker credential-process --role arn:aws:iam::1:role/Admin\n"
            "output = json\n[sso-session corp]\n") in new
    assert "credential_process = aws-vault export --format=json prod\n" in new
    assert new.endswith("\n\n[profile dev-Dev]\ncredential_process = sts-broker credential-process "
                        "--role arn:aws:iam::2:role/Dev\nregion = eu-central-1\n")


def test_merge_twice_changes_nothing() -> None:
    profiles = [_profile("prod-Admin", "arn:aws:iam::1:role/Admin"), _profile("dev-Dev", "arn:aws:iam::2:role/Dev")]
    once, _ = aws_config.merge(EXISTING, profiles)
    twice, _ = aws_config.merge(once, profiles)
    assert twice == once


def test_merge_into_an_empty_or_unterminated_file() -> None:
    assert aws_config.merge("", [_profile("a-B", "arn:aws:iam::1:role/B")])[0] == (
        "[profile a-B]\ncredential_process = sts-broker credential-process --role arn:aws:iam::1:role/B\n"
        "region = eu-central-1\n")
    new, _ = aws_config.merge("[default]\nregion = x", [_profile("a-B", "arn:aws:iam::1:role/B")])
    assert new.startswith("[default]\nregion = x\n\n[profile a-B]\n")


def test_diff_is_a_unified_diff_of_the_change() -> None:
    new, _ = aws_config.merge(EXISTING, [_profile("dev-Dev", "arn:aws:iam::2:role/Dev")])
    diff = aws_config.diff("/home/me/.aws/config", EXISTING, new)
    assert diff.startswith("--- /home/me/.aws/config\n+++ /home/me/.aws/config\n@@")
    assert "+[profile dev-Dev]\n" in diff and not any(
        line.startswith("-") and not line.startswith("---") for line in diff.splitlines())


def test_profile_names_and_quoting() -> None:
    role = {"account_name": "prod main", "account_id": "111122223333", "role_name": "Admin"}
    assert aws_config.profile_name("", role) == "prod-main-Admin"
    assert aws_config.profile_name("corp-", {"account_id": "1", "role_name": "R"}) == "corp-1-R"
    assert aws_config.profile_name("", {"account_id": "1", "role_name": "x]\n[default"}) == "1-x-default"
    assert aws_config.credential_process("sts-broker", "arn:aws:iam::1:role/a b") == (
        "sts-broker credential-process --role 'arn:aws:iam::1:role/a b'")
