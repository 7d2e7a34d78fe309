"""The XML guard in front of every SAML document the broker reads (responses, IdP metadata).

Refused before any library sees them, fast and with bounded memory: a DOCTYPE (so no DTD, no entity, no
entity expansion), documents over a size cap, deeper than MAX_DEPTH or with more than MAX_ELEMENTS elements,
and (in responses) comments and processing instructions, which exclusive canonicalization leaves out of the
signed digest and which libraries have truncated text at (CVE-2017-11427 style).

The DTD decision is taken on what the parser saw, whatever the encoding: a document in UTF-16 or UTF-32 (or
any encoding its declaration names) hides `<!DOCTYPE` from a byte pattern, and libxml2 still reads its
internal subset: entities then expand in what `.get()` returns and ATTLIST defaults appear as attributes
that are not in the signed form. So after parsing (no network, no external DTD, entities not substituted,
libxml2's amplification limit on) the document is refused if it has any doctype, internal or external
subset, or entity reference node. The byte pattern stays as an early refusal of the UTF-8 case only.
"""

from __future__ import annotations

import re
import threading

from lxml import etree  # type: ignore[import-untyped]

from broker.errors import XmlRejected

MAX_DEPTH = 40
MAX_ELEMENTS = 4000
_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST)", re.IGNORECASE)


class _NothingExternal(etree.Resolver):  # type: ignore[misc]
    """Every external load (DTD, external entity) answered with nothing. load_dtd=False does not stop
    libxml2 2.14 from reading a DOCTYPE's SYSTEM file (`file:` or a path: its ATTLIST defaults then show in
    `.get()`); no_network only stops http. The document is refused afterwards for having a DOCTYPE."""

    def resolve(self, system_url: str, public_id: str, context: object) -> object:
        return self.resolve_string("", context)


def _parser() -> etree.XMLParser:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                             huge_tree=False, remove_blank_text=False, remove_comments=False, remove_pis=False,
                             collect_ids=False)
    parser.resolvers.add(_NothingExternal())
    return parser


def guarded_parse(xml: bytes, *, max_bytes: int, allow_comments: bool = False,
                  max_elements: int = MAX_ELEMENTS) -> etree._Element:
    """`max_elements` is raised only for IdP metadata (an aggregate holds thousands of entities); a
    response keeps MAX_ELEMENTS."""
    if len(xml) > max_bytes:
        raise XmlRejected(f"document of {len(xml)} bytes over {max_bytes}", reason="saml_too_large")
    if _DOCTYPE.search(xml):
        raise XmlRejected("document declares a DTD or entities", reason="saml_xml_dtd")
    try:
        root = etree.fromstring(xml, _parser())
    except etree.XMLSyntaxError as exc:
        raise XmlRejected(f"not well-formed XML: {str(exc)[:120]}", reason="saml_xml_malformed") from None
    if root is None or not isinstance(root.tag, str):
        raise XmlRejected("no root element", reason="saml_xml_malformed")
    guard_tree(root, allow_comments=allow_comments, max_elements=max_elements)
    return root


def guard_tree(root: etree._Element, *, allow_comments: bool = False, max_elements: int = MAX_ELEMENTS) -> None:
    """What guarded_parse checks after parsing; also run on a tree the library built (a decrypted assertion)."""
    _no_dtd(root)
    _bounded(root, allow_comments, max_elements)


def _no_dtd(root: etree._Element) -> None:
    """The parser's view: no DOCTYPE of any kind, no entity left in the tree."""
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None or info.system_url \
            or info.public_id:
        raise XmlRejected("document declares a DTD (seen by the parser)", reason="saml_xml_dtd")
    if next(root.iter(etree.Entity), None) is not None:
        raise XmlRejected("entity reference in the document", reason="saml_xml_dtd")


_TOO_DEEP = "boolean(/*" + "/*" * MAX_DEPTH + ")"  # an element below MAX_DEPTH levels
_local = threading.local()


def _xpaths() -> tuple[etree.XPath, etree.XPath]:
    """Compiled once per thread (lxml XPath objects are not shared between threads)."""
    compiled: tuple[etree.XPath, etree.XPath] | None = getattr(_local, "xpaths", None)
    if compiled is None:
        compiled = _local.xpaths = (etree.XPath("count(//*)"), etree.XPath(_TOO_DEEP))
    return compiled


def _bounded(root: etree._Element, allow_comments: bool, max_elements: int) -> None:
    """Counted in libxml2, not node by node in Python."""
    if not allow_comments and (next(root.iter(etree.Comment, etree.ProcessingInstruction), None) is not None
                               or any(True for _ in root.itersiblings(preceding=True))
                               or any(True for _ in root.itersiblings())):
        raise XmlRejected("comment or processing instruction inside the document", reason="saml_xml_comment")
    elements, too_deep = _xpaths()
    if elements(root) > max_elements:
        raise XmlRejected(f"more than {max_elements} elements", reason="saml_too_large")
    if too_deep(root):
        raise XmlRejected(f"nesting deeper than {MAX_DEPTH}", reason="saml_xml_too_deep")
