"""Reading an XML document into the pattern tree (docs/format.md, "XML bodies").

Webhook models and response maps are laid over plain JSON-like trees; an XML body becomes one by
these rules, so the same patterns match it:

- The document is an object with one key, the root element's name.
- An element with neither attributes nor child elements is its text (``""`` when empty).
- Any other element is an object: each attribute as ``"@name"``, each child element by its name,
  and its own text (the text directly inside it, joined) as ``"#text"`` unless that is only
  whitespace.
- A name that occurs more than once in one element (a repeated child element) holds the list of
  their values in document order; one that occurs once holds the value itself.
- Names are local names: a namespace prefix and the namespace URI are dropped (``<s:Body>`` is
  ``Body``) and ``xmlns`` declarations are not attributes.
- CDATA sections are text; comments and processing instructions are ignored.

The parser is expat through ``defusedxml``: a document with a DTD (and so with any entity
declaration: billion laughs, quadratic blowup, external entities) is refused before any entity
is expanded, and so is a reference to an undefined entity. The tree is built while expat reads,
without recursion, and reading stops at the first element nested deeper than
:data:`MAX_XML_DEPTH` or at the node after :data:`MAX_XML_NODES` (elements and attributes).
Everything is linear in the body's size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final
from xml.etree.ElementTree import ParseError

from defusedxml import (
    DefusedXmlException,
    DTDForbidden,
    EntitiesForbidden,
    ExternalReferenceForbidden,
)
from defusedxml.ElementTree import DefusedXMLParser

from ._charset import decode_text

__all__ = [
    "MAX_XML_DEPTH",
    "MAX_XML_NODES",
    "XmlError",
    "is_xml",
    "parse_xml",
]

#: Deepest nesting of elements (the root is depth 1), as for JSON.
MAX_XML_DEPTH: Final = 800
#: Most elements and attributes in one document, at any depth, as JSON's values.
MAX_XML_NODES: Final = 100_000

TEXT_KEY: Final = "#text"
ATTRIBUTE_PREFIX: Final = "@"

_DECLARED_ENCODING: Final = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?\bencoding\s*=")


class XmlError(ValueError):
    """Why a document is not acceptable XML (the message says it in a sentence fragment)."""


def is_xml(media: str) -> bool:
    """``application/xml``, ``text/xml`` or any ``…+xml`` media type (already lower-cased)."""
    return media in ("application/xml", "text/xml") or media.endswith("+xml")


def _local(name: str) -> str:
    """``{uri}local`` (how expat names a namespaced element or attribute) → ``local``."""
    return name.rpartition("}")[2] if name.startswith("{") else name


def _add(fields: dict[str, object], name: str, value: object) -> None:
    previous = fields.get(name, _ABSENT)
    if previous is _ABSENT:
        fields[name] = value
    elif isinstance(previous, _Repeated):
        previous.append(value)
    else:
        fields[name] = _Repeated((previous, value))


_ABSENT: Final = object()


class _Repeated(list[object]):
    """The values of a repeated name (a list subclass only to tell it from a value while
    building; the finished tree holds plain lists)."""


@dataclass(slots=True)
class _Element:
    fields: dict[str, object] = field(default_factory=dict)
    text: list[str] = field(default_factory=list)
    children: bool = False

    def value(self) -> object:
        text = "".join(self.text)
        if not self.fields:
            return text
        for name, value in self.fields.items():
            if isinstance(value, _Repeated):
                self.fields[name] = list(value)
        if text.strip():
            self.fields[TEXT_KEY] = text
        return self.fields


class _Builder:
    """An expat target that builds the tree as it reads, within the limits."""

    def __init__(self) -> None:
        self._stack: list[_Element] = []
        self._nodes = 0
        self.root: dict[str, object] | None = None

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        if len(self._stack) >= MAX_XML_DEPTH:
            raise XmlError(f"elements are nested deeper than {MAX_XML_DEPTH} levels")
        self._nodes += 1 + len(attrib)
        if self._nodes > MAX_XML_NODES:
            raise XmlError(f"it has more than {MAX_XML_NODES} elements and attributes")
        element = _Element()
        for name, value in attrib.items():
            _add(element.fields, ATTRIBUTE_PREFIX + _local(name), value)
        self._stack.append(element)

    def end(self, tag: str) -> None:
        element = self._stack.pop()
        value = element.value()
        if self._stack:
            _add(self._stack[-1].fields, _local(tag), value)
        else:
            self.root = {_local(tag): value}

    def data(self, text: str) -> None:
        if self._stack:
            self._stack[-1].text.append(text)

    def close(self) -> dict[str, object] | None:
        return self.root


def parse_xml(body: bytes, charset: str | None = None) -> dict[str, object]:
    """The tree of an XML document; raises :class:`XmlError` saying why it is not acceptable.

    The document's own encoding (its declaration or byte order mark) wins; without a declared
    encoding a ``charset`` (from the Content-Type) is used, else UTF-8.
    """
    builder = _Builder()
    parser = DefusedXMLParser(
        target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    try:
        if charset and _DECLARED_ENCODING.match(body) is None:
            parser.feed(decode_text(body, charset, "strict").lstrip("\ufeff"))
        else:
            parser.feed(body)
        parser.close()
    except DTDForbidden:
        raise XmlError("a DTD (<!DOCTYPE …>) is not allowed") from None
    except EntitiesForbidden:
        raise XmlError("entity declarations are not allowed") from None
    except ExternalReferenceForbidden:
        raise XmlError("external references are not allowed") from None
    except DefusedXmlException as exc:  # pragma: no cover - any other defusedxml refusal
        raise XmlError(f"refused ({type(exc).__name__})") from None
    except ParseError as exc:
        line, column = exc.position
        message = str(exc).partition(":")[0] or "not well-formed"
        raise XmlError(f"{message} (line {line}, column {column + 1})") from None
    except (LookupError, UnicodeError):
        raise XmlError(f"the body is not valid {charset or 'in its declared encoding'}") from None
    except RecursionError:  # pragma: no cover - the builder is iterative; expat is C
        raise XmlError(f"elements are nested deeper than {MAX_XML_DEPTH} levels") from None
    if builder.root is None:  # pragma: no cover - expat refuses a document without an element
        raise XmlError("no root element")
    return builder.root
