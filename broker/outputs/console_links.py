"""Console deep links: a destination and a region a person asked for, checked against `console:` in the
settings, and where they lead (the sign-in and console hosts of the role's partition and the region).

A destination is one of the configured names (`ec2`) or exactly one of the configured paths (`/ec2/home`).
Anything else is refused before a credential is issued: another host (`//evil`, `https://evil`, `\\evil`),
a scheme (`javascript:`, `data:`), percent escapes (single or double), control characters; what is well
formed but not listed is refused with the list of names (they are configuration, not secrets)."""

from __future__ import annotations

from dataclasses import dataclass

from broker.errors import BadRequest
from broker.portal_settings import ConsoleConfig, console_path_problem

INVALID = ("The console destination must be one of the destinations this broker offers (a name such as s3, or "
           "its path such as /s3/home). Other sites, schemes, backslashes and encoded characters are refused.")
# A region's partition follows from its name (us-gov-west-1, cn-north-1); everything else is the aws one.
REGION_PARTITIONS = (("us-gov-", "aws-us-gov"), ("cn-", "aws-cn"))


@dataclass(frozen=True, slots=True)
class ConsoleLink:
    path: str = "/"  # "/" is the console's home
    region: str | None = None


HOME = ConsoleLink()


def partition_of_region(region: str) -> str:
    return next((partition for prefix, partition in REGION_PARTITIONS if region.startswith(prefix)), "aws")


def console_link(config: ConsoleConfig, partition: str, destination: str = "", region: str = "") -> ConsoleLink:
    """The link a person asked for, or BadRequest (destination_invalid, destination_not_allowed,
    region_not_allowed)."""
    return ConsoleLink(checked_destination(config, destination), _region(config, partition, region))


def checked_destination(config: ConsoleConfig, destination: str) -> str:
    """The console path of `destination` ("" is the home, "/"), or BadRequest."""
    if not destination:
        return "/"
    if destination in config.destinations:
        return config.destinations[destination]
    problem = console_path_problem(destination)
    if problem is not None:
        raise BadRequest(f"console destination {destination[:100]!r} {problem}", reason="destination_invalid",
                         public=INVALID)
    if destination not in config.destinations.values():
        names = ", ".join(sorted(config.destinations)) or "none"
        raise BadRequest(f"console destination {destination[:100]!r} is not in console.destinations",
                         reason="destination_not_allowed",
                         public=f"This console destination is not offered here. Choose one of: {names}.")
    return destination


def checked_region(config: ConsoleConfig, region: str) -> str | None:
    """`region` when it is in the allow-list; None for none; else BadRequest."""
    if not region:
        return None
    if region not in config.regions:
        offered = ", ".join(config.regions) or "none"
        raise BadRequest(f"console region {region[:40]!r} is not in console.regions", reason="region_not_allowed",
                         public=f"This region is not offered here. Choose one of: {offered}.")
    return region


def _region(config: ConsoleConfig, partition: str, region: str) -> str | None:
    if checked_region(config, region) is None:
        return None
    if partition_of_region(region) != partition:
        raise BadRequest(f"console region {region!r} is not in partition {partition}", reason="region_not_allowed",
                         public=f"The region {region} is not in this role's AWS partition ({partition}).")
    return region


def destination_url(console_base: str, link: ConsoleLink) -> str:
    """The console URL of the link: the region goes in the query, before any fragment (`#Instances:`)."""
    path, hash_mark, fragment = link.path.partition("#")
    if link.region is not None:
        path += ("&" if "?" in path else "?") + f"region={link.region}"
    return console_base.rstrip("/") + path + hash_mark + fragment
