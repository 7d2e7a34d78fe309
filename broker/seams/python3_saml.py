"""python3-saml's internals, reached for speed without changing what it decides (the one module that does).

- `ParsedResponse`: `OneLogin_Saml2_Response.__init__` replaced (it sets the library's private `_settings`,
  `_error` and calls `_query`, `_decrypt_assertion`), so the response is built over the tree the broker's XML
  guard already parsed instead of parsing the same bytes again.
- `cached_validation()`: `OneLogin_Saml2_XML.validate_xml` and `.query` and the `xmlsec` module attribute
  of `onelogin.saml2.utils` are replaced (once, by `install`) with versions that defer to the stock code
  unless the context is active.

Stock `is_valid` re-reads and re-compiles the protocol XSD (with its imports) on every response, loads the
IdP certificate from PEM on every signature check, and compiles each of its ~30 XPath queries anew. Inside
`cached_validation()` (what the broker's ACS uses) the compiled schema is reused, one per thread (lxml
schema objects keep an error log, so they are not shared between threads); compiled XPath queries are
reused per query text (the values vary through $tagid, not the text); the certificate's public key is
loaded once per PEM text and handed to xmlsec without the certificate itself (which it would otherwise copy
twice per check). The schema files ship with the library and never change at run time, so a cached schema
validates exactly as a fresh one. Outside the context (the stock baseline in bench/saml_acs.py) the
library behaves as shipped.

Each piece stays because the public path is more than 5% slower on the whole ACS path (bench/seams.py,
same run; figures in docs/upgrade-checklist.md); a faster strptime-free timestamp parse was removed, its
gain being 2.3%. tests/saml_sp/test_speed.py proves identical decisions to stock python3-saml on every
response of its corpus, for each piece alone and all together; tests/test_seam_pins.py pins the versions
below. Upgrading any of them: docs/upgrade-checklist.md.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from copy import deepcopy
from os.path import dirname, join
from typing import Any

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree  # type: ignore[import-untyped]
from onelogin.saml2 import utils as saml_utils
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

# The releases this module was read against; any other installed release fails tests/test_seam_pins.py.
WRITTEN_FOR = {"python3-saml": "1.16.0", "xmlsec": "1.3.17", "lxml": "6.1.3"}

# The pieces `cached_validation` can switch on (bench/seams.py measures each alone against stock).
PIECES = frozenset({"schema", "xpath", "keys"})
_active: ContextVar[frozenset[str]] = ContextVar("saml_cache_active", default=frozenset())
_local = threading.local()
_install_lock = threading.Lock()
_stock_validate_xml: Any = None
_stock_xmlsec: Any = None
_stock_query: Any = None
MAX_KEYS = 64
MAX_XPATHS = 256


def _schemas() -> dict[str, etree.XMLSchema]:
    cache: dict[str, etree.XMLSchema] | None = getattr(_local, "schemas", None)
    if cache is None:
        cache = _local.schemas = {}
    return cache


def _cached_validate_xml(xml: Any, schema: str, debug: bool = False) -> Any:
    if "schema" not in _active.get():
        return _stock_validate_xml(xml, schema, debug)
    try:
        xml = OneLogin_Saml2_XML.to_etree(xml)
    except Exception:
        return "unloaded_xml"
    schemas = _schemas()
    if schema not in schemas:
        with open(join(dirname(saml_utils.__file__), "schemas", schema)) as f:
            schemas[schema] = etree.XMLSchema(etree.parse(f))
    return xml if schemas[schema].validate(xml) else "invalid_xml"


def _cached_query(dom: Any, query: str, context: Any = None, tagid: Any = None) -> Any:
    if "xpath" not in _active.get():
        return _stock_query(dom, query, context, tagid)
    try:
        xpath = _local.xpaths[query]
    except (AttributeError, KeyError):
        xpath = _compile(query)
    source = dom if context is None else context
    return xpath(source) if tagid is None else xpath(source, tagid=tagid)


def _compile(query: str) -> etree.XPath:
    compiled: dict[str, etree.XPath] | None = getattr(_local, "xpaths", None)
    if compiled is None or len(compiled) > MAX_XPATHS:
        compiled = _local.xpaths = {}
    xpath = compiled[query] = etree.XPath(query, namespaces=C.NSMAP)
    return xpath


def _verification_key(data: Any, fmt: Any, password: Any) -> Any:
    """The certificate's public key alone. The library verifies with the key it sets on the signature
    context and never consults the certificate data a CERT_PEM key carries (validatecert takes another
    path), but xmlsec copies that certificate on every `ctx.key = ...` and again while verifying (about
    55 us a response). The stock load runs first so a certificate xmlsec refuses fails exactly as stock."""
    stock = xmlsec.Key.from_memory(data, fmt, password)
    try:
        text = data.decode() if isinstance(data, bytes) else str(data)
        public = x509.load_pem_x509_certificate(text.encode()).public_key()
        spki = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        return xmlsec.Key.from_memory(spki, xmlsec.KeyFormat.PEM, None)  # type: ignore[attr-defined]
    except (ValueError, TypeError, UnicodeDecodeError, xmlsec.Error):
        return stock


class _KeyCache:
    """Stands in for `xmlsec.Key` inside onelogin.saml2.utils: `from_memory` reuses a verification key
    per certificate text (per thread) while the cache is active; every other attribute is the real class's."""

    def __getattr__(self, name: str) -> Any:
        return getattr(xmlsec.Key, name)

    @staticmethod
    def from_memory(data: Any, fmt: Any, password: Any = None) -> Any:
        if "keys" not in _active.get() or fmt != xmlsec.KeyFormat.CERT_PEM:  # type: ignore[attr-defined]
            return xmlsec.Key.from_memory(data, fmt, password)
        keys: dict[Any, Any] | None = getattr(_local, "keys", None)
        if keys is None or len(keys) > MAX_KEYS:
            keys = _local.keys = {}
        if data not in keys:
            keys[data] = _verification_key(data, fmt, password)
        return keys[data]


class _XmlsecProxy:
    """onelogin.saml2.utils's view of the xmlsec module: the real one, with Key replaced by _KeyCache."""

    Key = _KeyCache()

    def __getattr__(self, name: str) -> Any:
        return getattr(_stock_xmlsec, name)


def install() -> None:
    """Idempotent; what it installs defers to the stock code unless `cached_validation()` is active."""
    global _stock_validate_xml, _stock_xmlsec, _stock_query
    with _install_lock:
        if _stock_validate_xml is None:
            _stock_validate_xml = OneLogin_Saml2_XML.validate_xml
            OneLogin_Saml2_XML.validate_xml = staticmethod(_cached_validate_xml)
        if _stock_query is None:
            _stock_query = OneLogin_Saml2_XML.query
            OneLogin_Saml2_XML.query = staticmethod(_cached_query)
        if _stock_xmlsec is None:
            _stock_xmlsec = saml_utils.xmlsec
            saml_utils.xmlsec = _XmlsecProxy()


@contextmanager
def cached_validation(pieces: frozenset[str] = PIECES) -> Iterator[None]:
    """All pieces by default (what the ACS uses); fewer for measuring and checking each alone."""
    install()
    token = _active.set(pieces)
    try:
        yield
    finally:
        _active.reset(token)


class ParsedResponse(OneLogin_Saml2_Response):  # type: ignore[misc]
    """python3-saml's Response over the tree the XML guard already parsed from the same bytes (a parser at
    least as strict as the library's: no DTD, no entities, no network; comments and PIs already refused),
    so the document is parsed once. Everything else is the library's own code."""

    def __init__(self, settings: OneLogin_Saml2_Settings, raw: bytes, root: Any) -> None:
        self._settings, self._error, self.response, self.document = settings, None, raw, root
        self.decrypted_document, self.encrypted, self.valid_scd_not_on_or_after = None, None, None
        if self._query("/samlp:Response/saml:EncryptedAssertion"):
            self.encrypted = True
            self.decrypted_document = self._decrypt_assertion(deepcopy(root))
