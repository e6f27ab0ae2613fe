"""Untrusted text: what every vendor string goes through before a model or a person sees it.

Vendor text is data, never instructions. A name, note, status, message or id may come from a
careless or hostile vendor, and the model reads it next to the server's own words, often rendered
as markdown. So it arrives as one plain line:

- no control, format, bidi or invisible characters (they hide or reorder what a reader sees);
- no line breaks, no runs of whitespace (a vendor line cannot pass for a line of ours);
- no markdown links or images: ``[x](url)`` and ``![x](url)`` become ``x (url)``, a bare
  ``<https://...>`` becomes the URL as plain text (an image URL must never be fetched by a client
  that renders the text); no ``[x]:`` in front that could define a reference link;
- no HTML: a ``<`` that would open a tag, comment or declaration is followed by a space, so
  ``<script>`` shows as ``< script>``: nothing renders, and nothing is hidden from the person
  reading either (a removed tag or comment could hide what the model was shown);
- capped in length.

Ids are different: changing one silently makes it name nothing (or something else) at the vendor.
An id is accepted only when cleaning would leave it exactly as it is (`safe_id`); otherwise it is
refused, never altered.

Enforced once, where vendor data becomes ours: the field types of `parts_mcp.domain` (`VendorText`,
`VendorNote`, `VendorId`, `VendorData`) and `VendorError` in `parts_mcp.vendors.base`.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

TEXT_LIMIT = 300
ID_LIMIT = 512  # place_order accepts part_ids up to this length

# Zero-width, bidi and tag characters, soft hyphen, and the blank "letters" used to hide text.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u115f\u1160\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069"
    "\u3164\ufeff\uffa0\U000e0000-\U000e007f]"
)
# Autolinks: <scheme:...> and <user@host>; kept as their plain text.
_AUTOLINK = re.compile(r"<((?:[A-Za-z][A-Za-z0-9+.-]{1,31}:|[^\s<>@]+@)[^\s<>]*)>")
# What opens a tag, comment, declaration or processing instruction.
_TAG_OPENER = re.compile(r"<(?=[A-Za-z/!?])")
# Inline links and images without nested brackets; applied until none is left (nested ones unwrap outward).
_LINK = re.compile(r"!?\[([^\[\]]*)\]\(([^()]*)\)")
# What is left of link syntax after that: the "](" of a broken link, and a reference definition
# ("[x]: url"), which only counts at the start of a line, so of this one-line text.
_LINK_REMNANT = re.compile(r"\](?=\()|^(\s*\[[^\]]*\])(?=:)")
_ROUNDS = 8  # nesting deeper than this is broken up by _LINK_REMNANT instead


def clean_text(value: Any, limit: int = TEXT_LIMIT) -> str:
    """`value` as one plain, capped line, safe to show as vendor data (see the module docstring).

    Idempotent: cleaning clean text (with the same or a larger limit) changes nothing.
    """
    # Only a bounded prefix can reach the result; cutting first keeps the regexes linear on huge input.
    text = unicodedata.normalize("NFC", str(value)[: limit * 4 + 64])
    text = _INVISIBLE.sub("", text)
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    text = _neutralize_markup(" ".join(text.split()))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _neutralize_markup(text: str) -> str:
    text = _TAG_OPENER.sub("< ", _AUTOLINK.sub(r"\1", text))
    for _ in range(_ROUNDS):
        unwrapped = _LINK.sub(_plain_link, text)
        if unwrapped == text:
            break
        text = unwrapped
    # Unwrapping can bring a "<" next to a letter ("[<]()b"), so tags are broken up once more.
    return _TAG_OPENER.sub("< ", _LINK_REMNANT.sub(lambda m: (m.group(1) or "]") + " ", text))


def _plain_link(match: re.Match[str]) -> str:
    label, target = match.group(1).strip(), match.group(2).strip()
    return f"{label} ({target})" if label and target else label or target


def safe_id(value: Any, limit: int = ID_LIMIT) -> str | None:
    """`value` as an id exactly as given, or None when it cannot be shown safely as it is.

    Safe means: text, at most `limit` characters, unchanged by `clean_text` (no control, bidi or
    invisible characters, no line breaks, no markup), and one token: no white space or quotes, so an
    id printed in the server's own sentence ("order 123 PO ...") cannot continue that sentence.
    """
    if not isinstance(value, str) or len(value) > limit or _NOT_IN_IDS.search(value):
        return None
    return value if clean_text(value, limit) == value else None


_NOT_IN_IDS = re.compile("[\\s\"'`«»]")


_CODE_JUNK = re.compile(r"[^A-Za-z0-9_.-]+")


def clean_code(value: Any, limit: int = 60) -> str:
    """An error code as a bare token (letters, digits, ``_ . -``), e.g. ``VALIDATION_FAILED``.

    Codes are shown inside brackets (``[CODE] ...``): anything else is folded to ``_`` so a vendor's
    code cannot close the bracket, break the line or carry markup. May return "".
    """
    if value is None:
        return ""
    return _CODE_JUNK.sub("_", clean_text(value, limit * 2)).strip("_")[:limit]


def clean_data(value: Any, limit: int = TEXT_LIMIT, *, depth: int = 0) -> Any:
    """Vendor JSON-like data with every string (keys too) cleaned; numbers, booleans and None kept.

    Nesting beyond a few levels is cut: this is for small vendor extras (tracking, invoice ...).
    """
    if isinstance(value, str):
        return clean_text(value, limit)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if depth >= 4:
        return clean_text(value, limit)
    if isinstance(value, dict):
        return {clean_text(k, 60): clean_data(v, limit, depth=depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_data(v, limit, depth=depth + 1) for v in value]
    return clean_text(value, limit)
