"""One IdP read out of SAML metadata: a single EntityDescriptor or an aggregate (EntitiesDescriptor, nested
as federations publish them), from the tree the XML guard already parsed.

Read here rather than by python3-saml's IdPMetadataParser, which parses the bytes a second time (so what a
signature check saw and what is read could differ), takes the first EntityDescriptor anywhere in the document
when no entity id is given (an aggregate's first IdP, silently), puts the configured entity id into an XPath
string, and counts an encryption-only KeyDescriptor as the signing certificate when it is the only one.
What it reads is otherwise the same: the entity's first SAML 2.0 IDPSSODescriptor, the first
SingleSignOnService of a binding, every KeyDescriptor whose `use` is not encryption (no `use` = both, so
signing; all of them kept, for rollover), WantAuthnRequestsSigned="true".
"""

from __future__ import annotations

from collections.abc import Iterator
from copy import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from onelogin.saml2.utils import OneLogin_Saml2_Utils
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
SAML2_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
ENTITY, ENTITIES = f"{{{MD}}}EntityDescriptor", f"{{{MD}}}EntitiesDescriptor"
IDP_ROLE = f"{{{MD}}}IDPSSODescriptor"
LISTED = 10  # entity ids named in an error message (and the count of all)


class MetadataRefused(ValueError):
    """Metadata that is not used, with a reason code for the audit log and the metric. A ValueError, as
    every metadata problem is: a file turns it into a ConfigError, a URL keeps the last good copy."""

    def __init__(self, detail: str, reason: str = "saml_metadata_invalid") -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Chosen:
    entity: Any  # the EntityDescriptor
    role: Any  # its IDPSSODescriptor
    path: tuple[Any, ...]  # the root .. the entity, for validUntil and cacheDuration


def choose_idp(root: Any, entity_id: str | None) -> Chosen:
    """The IdP to use: the document's only entity, or in an aggregate the one entity_id names."""
    if root.tag == ENTITY:
        if entity_id is not None and root.get("entityID") != entity_id:
            raise MetadataRefused(f"metadata entityID {str(root.get('entityID'))[:200]!r} is not the configured "
                                  f"entity_id {entity_id[:200]!r}", "saml_metadata_entity")
        return Chosen(root, _idp_role(root), (root,))
    if root.tag != ENTITIES:
        raise MetadataRefused(f"metadata root is {str(root.tag)[:100]}, not an EntityDescriptor or "
                              "EntitiesDescriptor")
    if entity_id is None:
        idps = [(entity, path) for entity, path in _entities(root) if _saml2_roles(entity)]
        if len(idps) != 1:  # one IdP (TestShib's documents: an IdP and an SP) is unambiguous
            raise MetadataRefused(f"metadata is an aggregate (EntitiesDescriptor) of {len(idps)} IdPs; set entity_id: "
                                  f"to the one to use. {_idp_list(root)}", "saml_metadata_entity")
        return Chosen(idps[0][0], _idp_role(idps[0][0]), idps[0][1])
    found = [(entity, path) for entity, path in _entities(root) if entity.get("entityID") == entity_id]
    if len(found) != 1:
        what = "no entity" if not found else f"{len(found)} entities"
        raise MetadataRefused(f"the aggregate has {what} with entityID {entity_id[:200]!r} (entity_id:). "
                              f"{_idp_list(root)}", "saml_metadata_entity")
    entity, path = found[0]
    return Chosen(entity, _idp_role(entity, root), path)


def _entities(root: Any) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    """Every EntityDescriptor of an aggregate, in document order, with its EntitiesDescriptor ancestors
    (only as the schema nests them: EntitiesDescriptor > EntitiesDescriptor* > EntityDescriptor)."""
    stack: list[tuple[Iterator[Any], tuple[Any, ...]]] = [(iter(root), (root,))]
    while stack:  # as deep as the XML guard allows (MAX_DEPTH)
        children, path = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
        elif child.tag == ENTITY:
            yield child, (*path, child)
        elif child.tag == ENTITIES:
            stack.append((iter(child), (*path, child)))


def _saml2_roles(entity: Any) -> list[Any]:
    return [role for role in entity.iterchildren(IDP_ROLE)
            if SAML2_PROTOCOL in (role.get("protocolSupportEnumeration") or "").split()]


def _idp_role(entity: Any, root: Any | None = None) -> Any:
    roles = _saml2_roles(entity)
    if not roles:
        listed = f" {_idp_list(root)}" if root is not None else ""
        raise MetadataRefused(f"entity {str(entity.get('entityID'))[:200]!r} is not a SAML 2.0 IdP (no "
                              f"IDPSSODescriptor for SAML 2.0; an SP or another role).{listed}",
                              "saml_metadata_entity")
    return roles[0]


def _idp_list(root: Any) -> str:
    ids = [str(entity.get("entityID"))[:200] for entity, _ in _entities(root) if _saml2_roles(entity)]
    return f"IdP entity ids in the document ({len(ids)}): {ids[:LISTED]}" + (" ..." if len(ids) > LISTED else "")


def sso_location(role: Any, binding_urn: str) -> str | None:
    """The first SingleSignOnService of that binding (python3-saml's choice too)."""
    for service in role.iterchildren(f"{{{MD}}}SingleSignOnService"):
        if service.get("Binding") == binding_urn:
            location = service.get("Location")
            return str(location) if location is not None else None
    return None


def signing_certificates(role: Any) -> list[str]:
    """Base64 bodies of every signing certificate: KeyDescriptor without `use`, or whose `use` is not
    encryption; whitespace and comments inside the element removed."""
    found = []
    for key in role.iterchildren(f"{{{MD}}}KeyDescriptor"):
        if "encryption" in (key.get("use") or ""):
            continue
        for cert in key.iterfind(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate"):
            text = OneLogin_Saml2_XML.element_text(copy(cert))  # strips comments: on a copy, not the tree
            body = "".join((text or "").split())
            if not body:
                raise MetadataRefused("metadata has an empty X509Certificate")
            found.append(body)
    return found


def valid_until(path: tuple[Any, ...], role: Any) -> float | None:
    """The earliest validUntil on the root, the EntitiesDescriptors around the entity, the entity and its
    IdP role (epoch seconds), or None when none has one."""
    times = [_instant(node.get("validUntil")) for node in (*path, role) if node.get("validUntil") is not None]
    return min(times) if times else None


def cache_duration(path: tuple[Any, ...], role: Any) -> float | None:
    """The shortest cacheDuration (seconds) on the same elements."""
    found = []
    for node in (*path, role):
        text = node.get("cacheDuration")
        if text is not None:
            try:
                found.append(float(OneLogin_Saml2_Utils.parse_duration(text.strip(), 0)))
            except Exception:  # isodate's ISO8601Error and friends
                raise MetadataRefused(f"cacheDuration {text[:60]!r} is not an xs:duration") from None
    return max(0.0, min(found)) if found else None


def _instant(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise MetadataRefused(f"validUntil {text[:60]!r} is not an xs:dateTime") from None
    if moment.tzinfo is None:  # xs:dateTime without a zone: SAML times are UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
