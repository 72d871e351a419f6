"""XML request bodies from a template string (docs/format.md, "XML bodies").

An XML body's ``request_parameters`` is the document itself, as a string with placeholders. A
placeholder may stand in element text or in an attribute value (quoted with ``"`` or ``'``);
its value is escaped for both (``& < > " '`` and the line breaks and tab, which an attribute
would otherwise fold into spaces), so no value can change the document's structure. A value
holding a character XML 1.0 cannot carry (a control character other than tab and line breaks, a
lone surrogate, U+FFFE, U+FFFF) cannot be sent: rendering fails. A placeholder without a value
is ``""``. The body is sent as UTF-8.

:func:`template_problems` is the checker's rule: with every placeholder replaced by sample text,
the template must be a well-formed document that the hardened parser (:mod:`._xml`) accepts (no
DTD), and each placeholder must have landed in element text or an attribute value — not in a
name, a comment, a processing instruction or a CDATA section (where escaping means nothing).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Final

from ._errors import RenderError
from ._placeholders import Placeholder, parse_template
from ._template import Lookup, placeholder_text, value_text
from ._xml import XmlError, parse_xml

__all__ = ["XmlRenderer", "compile_xml", "escape_xml", "template_problems"]

XmlRenderer = Callable[[Lookup], bytes]

_ESCAPES: Final = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "'": "&apos;",
        "\t": "&#9;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)
_NOT_XML: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SAMPLE: Final = re.compile(r"#(\d+)#")
_CDATA: Final = re.compile(r"<!\[CDATA\[(.*?)(?:\]\]>|\Z)", re.DOTALL)
_DECLARATION: Final = re.compile(r"\A\s*<\?xml\b[^>]*?\bencoding\s*=\s*[\"']([^\"']*)[\"']")


def escape_xml(text: str) -> str:
    """``text`` as XML character data, safe in element text and in either kind of attribute
    quotes; raises ValueError when it holds a character XML 1.0 cannot carry."""
    if _NOT_XML.search(text) is not None:
        raise ValueError("a character XML cannot carry")
    return text.translate(_ESCAPES)


def compile_xml(text: str, where: str) -> XmlRenderer:
    """A function that renders the XML template ``text`` to the UTF-8 body."""
    segments = parse_template(text)

    def render(values: Lookup) -> bytes:
        out: list[str] = []
        for segment in segments:
            if isinstance(segment, str):
                out.append(segment)
                continue
            try:
                text = (
                    placeholder_text(segment, values)
                    if segment.filters
                    else value_text(values.get(segment.name))
                )
                out.append(escape_xml(text))
            except ValueError:
                raise RenderError(
                    f"${segment.name}$ holds a character that an XML body cannot carry",
                    pointer=where,
                ) from None
        return "".join(out).encode("utf-8")

    return render


def template_problems(text: str) -> list[str]:
    """Why ``text`` cannot be an XML body template (empty when it can)."""
    problems: list[str] = []
    segments = parse_template(text)
    count = sum(1 for s in segments if isinstance(s, Placeholder))
    sample = "".join(_sample(segments))
    declared = _DECLARATION.match(sample)
    if declared is not None and declared.group(1).lower().replace("-", "") != "utf8":
        problems.append(
            f'the XML declaration says encoding="{declared.group(1)}", '
            "but an XML body is sent as UTF-8"
        )
    for section in _CDATA.finditer(text):
        if any(isinstance(s, Placeholder) for s in parse_template(section.group(1))):
            problems.append(
                "a placeholder stands in a CDATA section, where its value cannot be escaped:"
                " write it as element text"
            )
            break
    try:
        tree = parse_xml(sample.encode("utf-8"))
    except XmlError as exc:
        problems.append(
            "the template is not a well-formed XML document once each placeholder is replaced"
            f" by sample text: {exc}. A placeholder may stand only in element text or in an"
            " attribute value"
        )
        return problems
    found = {int(m) for value in _strings(tree) for m in _SAMPLE.findall(value)}
    if len(found & set(range(count))) < count:
        problems.append(
            "a placeholder stands in a comment or processing instruction: it may stand only in"
            " element text or in an attribute value"
        )
    return problems


def _sample(segments: tuple[str | Placeholder, ...]) -> Iterator[str]:
    index = 0
    for segment in segments:
        if isinstance(segment, str):
            yield segment
        else:
            # "#" may not start or be in an XML name: a placeholder in a name is not well-formed.
            yield f"#{index}#"
            index += 1


def _strings(tree: object) -> Iterator[str]:
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
