"""What AWS accepts in a SAML assertion for AssumeRoleWithSAML, per partition: the bearer Recipient (its sign-in
endpoint) and the Audience. One place for the broker's minted assertions (issuers/saml_assertion), the pass-through
check (issuers/passthrough) and the per-IdP `aws_passthrough` option (connectors/saml_config).

AWS documents https://signin.aws.amazon.com/saml (and, in the aws partition, the regional
https://REGION.signin.aws.amazon.com/saml and the older /static/saml) as the Recipient, and urn:amazon:webservices
as the Audience; it also takes its sign-in URL as the Audience in the aws partition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

PartitionName = Literal["aws", "aws-us-gov", "aws-cn"]


@dataclass(frozen=True)
class Partition:
    audience: str
    recipient: str


PARTITIONS: dict[str, Partition] = {
    "aws": Partition("urn:amazon:webservices", "https://signin.aws.amazon.com/saml"),
    "aws-us-gov": Partition("urn:amazon:webservices:govcloud", "https://signin.amazonaws-us-gov.com/saml"),
    "aws-cn": Partition("urn:amazon:webservices:cn-north-1", "https://signin.amazonaws.cn/saml"),
}
_REGIONAL = re.compile(r"https://(?:[a-z]{2}(?:-[a-z]+)+-[0-9]\.)?signin\.aws\.amazon\.com/(?:static/)?saml")
_EXTRA_AUDIENCES = {"aws": frozenset({"https://signin.aws.amazon.com/saml"})}


def is_aws_recipient(partition: str, url: str) -> bool:
    """`url` is a sign-in endpoint AWS accepts as the bearer Recipient in that partition."""
    if partition == "aws":
        return _REGIONAL.fullmatch(url) is not None
    return url == PARTITIONS[partition].recipient


def aws_audiences(partition: str) -> frozenset[str]:
    """The Audience values AWS accepts in that partition."""
    return frozenset({PARTITIONS[partition].audience}) | _EXTRA_AUDIENCES.get(partition, frozenset())


def any_aws_recipient(url: str) -> bool:
    return any(is_aws_recipient(name, url) for name in PARTITIONS)


def any_aws_audience(audience: str) -> bool:
    return any(audience in aws_audiences(name) for name in PARTITIONS)
