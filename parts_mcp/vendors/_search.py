"""How look-ups judge what a vendor sent back, and what to ask a vendor when a query found nothing.

The vendors search differently: Skynet and Keyloop match part numbers exactly, Factory AI and
PartsSource match text, Shopmonkey leaves matching to us. These helpers let each client send what
its vendor understands and judge every answer the same way:

- a name matches a part when every word of the query, singular or plural and in any order, starts
  a word of the part's text ("brake pads" and "pad brake" both match "Brake Pad Set");
- a query nobody found gets the few nearest parts a vendor has, ranked by difflib's similarity of
  the part numbers (or, for a name, by how many of its words the part has).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Generic, TypeVar

from parts_mcp.domain import Suggestion

MAX_SUGGESTIONS = 3  # per query and vendor: a few to choose from, not a catalog
# A look-up that misses more queries than this at a vendor is a bulk check, not a search: no near misses.
MAX_SUGGESTED_QUERIES = 10
MAX_VARIANTS = 4  # near part numbers tried per query where a vendor only matches exactly
MAX_NAME_WORDS = 4  # words of one name sent as separate searches
MIN_NUMBER_SIMILARITY = 0.6  # below this a part number is another part, not a near miss
MIN_WORD_SHARE = 0.5  # a name suggestion has at least half of the query's words

_WORD = re.compile(r"[^\W_]+")
# One token with a digit in it: "MS21042L3", "AN3-5A", "SKF-6204". Anything else is a name.
_PART_NUMBER = re.compile(r"^(?=.*\d)[A-Za-z0-9][A-Za-z0-9./_-]*$")
_LAST_NUMBER = re.compile(r"\d+(?!.*\d)")
_TRAILING_LETTERS = re.compile(r"(?<=\d)[A-Za-z]+$")
_SEPARATORS = "-./_ "

T = TypeVar("T")


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def squash(text: str) -> str:
    """A part number without case, spaces or punctuation: "17d-1210 ch" is 17d1210ch."""
    return "".join(words(text))


def singular(word: str) -> str:
    """English plural to singular, for matching only: both sides go through it, so a rare odd stem is harmless."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def stems(text: str) -> list[str]:
    return [singular(w) for w in words(text)]


def is_part_number(query: str) -> bool:
    return bool(_PART_NUMBER.match(query.strip()))


def name_matches(query: str, text: str) -> bool:
    """Every word of `query` (singular) starts a word of `text` (singular): "oil" finds oil filters, not coils."""
    wanted, have = stems(query), stems(text)
    return bool(wanted) and all(any(h.startswith(w) for h in have) for w in wanted)


def search_words(query: str) -> list[str]:
    """The words of a name as a text search should get them, most selective (longest) first.

    Singular, and without a final "y", so that a substring search for "batter" finds both "battery"
    and "batteries"; the answers are then judged with `name_matches`.
    """
    keys = [s[:-1] if s.endswith("y") and len(s) > 3 else s for s in stems(query)]
    return sorted(dict.fromkeys(k for k in keys if len(k) >= 2), key=len, reverse=True)[:MAX_NAME_WORDS]


def number_prefix(query: str) -> str | None:
    """A part number cut to its first two thirds, for a text search: near numbers share that much.

    "SKF-6206" -> "SKF-6" (finds SKF-6204 and SKF-6205); "AN960C10L" -> "AN960C".
    """
    text = query.strip()
    prefix = text[: max(3, len(text) * 2 // 3)].rstrip(_SEPARATORS)
    return prefix if len(squash(prefix)) >= 3 and prefix != text else None


def number_variants(query: str, limit: int = MAX_VARIANTS) -> list[str]:
    """Near part numbers to try at a vendor that only matches exactly, most likely first.

    Without a trailing suffix ("AN960C10L" -> "AN960C10"), the last letter or number one up or down
    ("1K0698151B" -> "1K0698151A", "AN3-5A" -> "AN3-6A"), then one or two characters shorter.
    """
    text = query.strip()
    candidates = [_TRAILING_LETTERS.sub("", text)]
    if re.search(r"\d[A-Za-z]$", text):
        candidates += [text[:-1] + chr(ord(text[-1]) + step) for step in (-1, 1)]
    last = _LAST_NUMBER.search(text)
    if last:
        digits = last.group()
        for value in (v for v in (int(digits) - 1, int(digits) + 1) if v >= 0):
            # "08" stays two digits wide ("07", "09"); "10" becomes "9".
            number = str(value).zfill(len(digits)) if digits.startswith("0") else str(value)
            candidates.append(text[: last.start()] + number + text[last.end() :])
    candidates += [text[:-1], text[:-2]]
    seen = {text.casefold()}
    variants: list[str] = []
    for candidate in (c.rstrip(_SEPARATORS) for c in candidates):
        usable = _PART_NUMBER.match(candidate) and len(squash(candidate)) >= 3
        if usable and candidate.casefold() not in seen:
            seen.add(candidate.casefold())
            variants.append(candidate)
    return variants[:limit]


def similarity(query: str, part_number: str, name: str) -> float | None:
    """How near a part is to a query, 0..1; None when it is too far to suggest."""
    if is_part_number(query):
        wanted, have = squash(query), squash(part_number)
        if not have or have == wanted:
            return None  # the query itself: a hit, not a suggestion
        matcher = SequenceMatcher(None, wanted, have, autojunk=False)
        # The cheap upper bounds first, as difflib.get_close_matches does: most of an inventory is far off.
        if matcher.real_quick_ratio() < MIN_NUMBER_SIMILARITY or matcher.quick_ratio() < MIN_NUMBER_SIMILARITY:
            return None
        score = matcher.ratio()
        return score if score >= MIN_NUMBER_SIMILARITY else None
    wanted, have = stems(query), stems(f"{name} {part_number}")
    if not wanted:
        return None
    share = sum(any(h.startswith(w) for h in have) for w in wanted) / len(wanted)
    if share < MIN_WORD_SHARE:
        return None
    # Ties between parts with as many of the words go to the one whose name reads closest to the query.
    closeness = SequenceMatcher(None, " ".join(wanted), " ".join(stems(name)), autojunk=False).ratio()
    return 0.9 * share + 0.1 * closeness


def suggest(query: str, vendor: str, candidates: Iterable[tuple[str, str]]) -> list[Suggestion]:
    """The few `candidates` (part number, name) nearest to `query`, best first."""
    best: dict[str, tuple[float, str, str]] = {}
    for number, name in candidates:
        score = similarity(query, number, name)
        key = squash(number)
        if score is not None and (key not in best or score > best[key][0]):
            best[key] = (score, number, name)
    ranked = sorted(best.values(), key=lambda s: (-s[0], s[1]))[:MAX_SUGGESTIONS]
    return [
        Suggestion(query=query, vendor=vendor, part_number=number, name=name, similarity=round(score, 2))
        for score, number, name in ranked
    ]


@dataclass(frozen=True)
class Judged(Generic[T]):
    """A second look's answers: the candidates each name query matched, and near misses for the rest."""

    found: dict[str, list[T]]
    not_found: list[str]
    suggestions: list[Suggestion]


def judge(
    vendor: str, candidates: Mapping[str, Sequence[T]], describe: Callable[[T], tuple[str, str, str]]
) -> Judged[T]:
    """Judge each query's candidates; `describe` gives a candidate's part number, name and searchable text.

    Only a name can be found here: a near part number is another part, so it is only suggested.
    """
    found: dict[str, list[T]] = {}
    not_found: list[str] = []
    suggestions: list[Suggestion] = []
    for query, items in candidates.items():
        described = [(item, *describe(item)) for item in items]
        hits = [] if is_part_number(query) else [item for item, _, _, text in described if name_matches(query, text)]
        if hits:
            found[query] = hits
        else:
            not_found.append(query)
            suggestions += suggest(query, vendor, [(number, name) for _, number, name, _ in described])
    return Judged(found, not_found, suggestions)
