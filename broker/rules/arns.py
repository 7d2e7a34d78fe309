"""Role ARNs in the rules: their parts, and the two pattern languages (allow-lists and deny rules). Pure."""

from __future__ import annotations

import fnmatch
import functools
import re

from broker.rules.conditions import fold

# pydantic (Rust regex) and Python's re (always fullmatch) read these alike: classes are spelled in ASCII.
PARTITION = r"aws|aws-cn|aws-us-gov"
IAM_NAME = r"[A-Za-z0-9_+=,.@-]"  # IAM's [\w+=,.@-], ASCII as IAM's own validators are
ROLE_ARN = rf"^arn:({PARTITION}):iam::([0-9]{{12}}):role/({IAM_NAME}+/)*{IAM_NAME}{{1,64}}$"


def arn_account(arn: str) -> str:
    return arn.split(":")[4]


def arn_partition(arn: str) -> str:
    return arn.split(":")[1]


def is_role_arn(value: str) -> bool:
    return re.fullmatch(ROLE_ARN, value) is not None


@functools.lru_cache(maxsize=1024)
def _arn_glob(pattern: str) -> re.Pattern[str]:
    """`*` and `?` stay inside one ':'-field and one '/'-segment; `**` crosses '/' (never ':')."""
    parts = re.split(r"(\*\*|\*|\?)", pattern)
    wild = {"**": "[^:]*", "*": "[^:/]*", "?": "[^:/]"}
    return re.compile("".join(wild.get(p) or re.escape(p) for p in parts))


def arn_glob_match(arn: str, pattern: str) -> bool:
    """An allow pattern (roles_from): anchored at both ends, case-sensitive, segment-bound wildcards."""
    return _arn_glob(pattern).fullmatch(arn) is not None


def arn_deny_match(arn: str, pattern: str) -> bool:
    """A deny pattern errs wide: `*` matches anything, '/' and ':' included, and ASCII case is ignored
    (IAM role names are unique regardless of case, so role/ADMIN names the same role as role/Admin)."""
    return fnmatch.fnmatchcase(fold(arn), fold(pattern))
