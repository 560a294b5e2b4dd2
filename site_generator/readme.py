"""A challenge README rendered from Markdown into HTML that is safe to put on a page.

The README is written by the organizers but read by everyone, and the site
makes no external requests, so the HTML is sanitised with an allowlist (nh3,
i.e. Ammonia): no scripts, styles, event handlers, forms, frames, ids or
classes; links only to ``http``, ``https`` and ``mailto`` addresses, each with
``rel="noopener noreferrer"``; no images at all (a Markdown image becomes its
alternative text: an external source would be a request, and the challenge's
own files are not on the site). A link that points elsewhere (a relative path,
``javascript:``) keeps its text and loses the link.

Headings move so that the README's top level is ``<h2>``, below the page's
``<h1>``; header cells of Markdown tables get ``scope="col"``.
"""

from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

#: Elements kept; any other element is dropped, its text kept (``script`` and ``style``: text too).
TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "details", "div", "dl", "dt",
    "em", "h2", "h3", "h4", "h5", "h6", "hr", "i", "ins", "kbd", "li", "ol", "p", "pre", "q", "s", "samp",
    "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead",
    "tr", "ul", "var", "wbr",
})
ATTRIBUTES = {
    "a": {"href"},
    "abbr": {"title"},
    "ol": {"start"},
    "th": {"scope", "colspan", "rowspan", "style"},
    "td": {"colspan", "rowspan", "style"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
REL = "noopener noreferrer"
# what nh3 leaves of a link whose address it removed: an <a> without href, which must carry no rel
_NO_HREF = re.compile(rf'<a rel="{REL}">(.*?)</a>', re.DOTALL)


def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True}).enable("table")


def _shift_headings(tokens: list[Token]) -> None:
    """Move every Markdown heading so that the README's top level becomes ``<h2>``."""
    levels = [int(t.tag[1]) for t in tokens if t.type == "heading_open"]
    if not levels:
        return
    shift = 2 - min(levels)
    for t in tokens:
        if t.type in ("heading_open", "heading_close"):
            t.tag = f"h{min(6, int(t.tag[1]) + shift)}"


def _column_headers(tokens: list[Token]) -> None:
    in_head = False
    for t in tokens:
        if t.type in ("thead_open", "thead_close"):
            in_head = t.type == "thead_open"
        elif t.type == "th_open" and in_head:
            t.attrSet("scope", "col")


def _images_as_text(tokens: list[Token]) -> None:
    """Each Markdown image becomes the text ``[image: <alt>]``: the site shows no images."""
    for t in tokens:
        if t.type != "inline" or not t.children:
            continue
        for n, child in enumerate(t.children):
            if child.type == "image":
                alt = child.content.strip()
                t.children[n] = Token("text", "", 0, content=f"[image: {alt}]" if alt else "[image]")


def _only_listed(tag: str, attribute: str, value: str) -> str | None:
    """Drop what nh3 allows on every element (``lang``, ``title``): only :data:`ATTRIBUTES` stay
    (and the ``rel`` nh3 sets on links)."""
    if attribute in ATTRIBUTES.get(tag, ()) or (tag == "a" and attribute == "rel"):
        return value
    return None


def sanitise(html: str) -> str:
    """``html`` with only the allowed elements, attributes and link addresses left."""
    clean = nh3.clean(
        html,
        tags=set(TAGS),
        attributes={tag: set(attrs) for tag, attrs in ATTRIBUTES.items()},
        attribute_filter=_only_listed,
        clean_content_tags={"script", "style"},
        url_schemes=set(URL_SCHEMES),
        url_relative="deny",
        link_rel=REL,
        filter_style_properties={"text-align"},
        strip_comments=True,
    )
    return _NO_HREF.sub(r"\1", clean)


def render(text: str) -> str:
    """The README ``text`` (Markdown, HTML allowed, tables on) as sanitised HTML."""
    md = _markdown()
    tokens = md.parse(text)
    _shift_headings(tokens)
    _column_headers(tokens)
    _images_as_text(tokens)
    return sanitise(md.renderer.render(tokens, md.options, {}))
