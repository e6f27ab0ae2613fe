"""Finding configured secrets in text however a vendor (or a log line) spells them, and blanking them.

One engine for every place text leaves the server: vendor answers at the source
(`vendors.base.VendorHttp`), tool results and errors (`server.errors.Redactor`) and log lines
(`parts_mcp.logs`). It finds any run of `MIN_RUN` or more consecutive letters and digits of a
secret (its punctuation does not count, as below):

- in any case (compared case-folded);
- spaced: any characters that are not letters or digits may stand between the secret's characters,
  and are ignored (spaces, tabs, CR/LF, ``- _ . :``, but also the zero-width, control and markup
  characters that `untrusted.clean_text` later removes or turns into spaces: an answer must not
  become a secret *after* it was checked). The secret's own punctuation is ignored the same way,
  so ``sk_live_x`` echoed as ``SK LIVE X`` is found. Only letters and digits count towards a run:
  where anything may stand between characters, a secret's ``_`` cannot be told from a vendor's
  ``'`` (``shopmonkey_s`` in a key, ``Shopmonkey's`` in a message);
- percent-encoded (``%41``) or backslash-escaped (``\\x41``, ``\\u0041``, JSON's ``\\n``) characters
  are read as the characters they stand for, so URL-encoded and JSON- or repr-escaped echoes count;
- base64, standard or URL-safe, padded or not, at each of the 3 byte alignments, so the secret is
  found inside a longer blob (``base64("user:" + secret)``): a run counts when the bytes of the
  secret it encodes hold `MIN_RUN` letters and digits.

The whole run is replaced by `MARKER`, extended to where the secret stops matching. Short secrets
(under `MIN_RUN` letters and digits) are only replaced where they occur exactly: fuzzier matching
of a short value would blank ordinary words.

Cost, while nothing is found: the text is lower-cased and stripped in one C call (as bytes when it
is ASCII) and cut into blocks looked up in a set, so about 1 µs for a short string and 15 µs per
KB. Only a block that belongs to a secret is looked at closer; mapping back to the text's
positions (a loop per character) happens only for a string that really holds one.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import re
import string
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from parts_mcp.untrusted import clean_text

__all__ = ["MARKER", "MIN_RUN", "SecretFinder", "finder"]

MARKER = "***"
MIN_RUN = 12  # letters and digits of a secret; no honest id or PO number holds this much of a random key

# "Letters" that clean_text removes as invisible (Hangul fillers): separators here, like punctuation.
_FILLERS = "\u115f\u1160\u3164\uffa0"
_ESCAPE = r"%([0-9A-Fa-f]{2})|\\(?:x([0-9A-Fa-f]{2})|u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))"
_ESCAPES = re.compile(_ESCAPE, re.DOTALL)
# What the mapped normalization walks: escapes, and single letters or digits (separators are skipped in C).
_TOKENS = re.compile(f"{_ESCAPE}|[^\\W_{_FILLERS}]", re.DOTALL)
_WHITESPACE_ESCAPES = frozenset("nrtvfab0")
# ASCII text (nearly all of it) is normalized as bytes: lower-cased and stripped in one C call.
_ASCII_LOWER = bytes.maketrans(string.ascii_uppercase.encode(), string.ascii_lowercase.encode())
_ASCII_DROP = bytes(code for code in range(128) if not chr(code).isalnum())
# Texts are looked up in blocks of 4 letters and digits, which ASCII text reads as machine integers:
# every run of MIN_RUN (base64: 16) holds a whole block at a multiple of 4 (2 * 4 - 1 <= 12).
_BLOCK = 4
_BLOCK_FORMAT: Literal["I"] = "I"


class _Letters(dict[int, int | None]):
    """A `str.translate` table keeping letters and digits, dropping everything else (learnt per code point)."""

    def __missing__(self, code: int) -> int | None:
        ch = chr(code)
        kept = code if ch.isalnum() and ch not in _FILLERS else None
        if code < 0x10000:  # a hostile text of every code point must not grow the table without bound
            self[code] = kept
        return kept


_LETTERS = _Letters()


def _decode(match: re.Match[str]) -> str:
    for group in (1, 2, 3, 4):
        if (digits := match.group(group)) is not None:
            code = int(digits, 16)
            return chr(code) if code <= 0x10FFFF else " "
    escaped = match.group(5)
    if escaped is None:
        return match.group()  # a plain letter or digit (the mapped walk)
    return " " if escaped in _WHITESPACE_ESCAPES else escaped


def _unescaped(text: str) -> str:
    return _ESCAPES.sub(_decode, text) if "%" in text or "\\" in text else text


def normalized(text: str) -> str:
    """`text` as the finder compares it: escapes decoded, case-folded, only letters and digits left."""
    text = _unescaped(text)
    if text.isascii():
        return text.encode().translate(_ASCII_LOWER, _ASCII_DROP).decode()
    return text.casefold().translate(_LETTERS)


def _mapped(text: str) -> tuple[str, list[int], list[int]]:
    """`normalized(text)`, with where each of its characters starts and ends in `text`."""
    if text.isascii() and "%" not in text and "\\" not in text:
        starts = [m.start() for m in _TOKENS.finditer(text)]
        return normalized(text), starts, [s + 1 for s in starts]
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for match in _TOKENS.finditer(text):
        for ch in _decode(match).casefold():
            if ch.isalnum() and ch not in _FILLERS:
                chars.append(ch)
                starts.append(match.start())
                ends.append(match.end())
    return "".join(chars), starts, ends


@dataclass(frozen=True)
class _Form:
    """One spelling of a secret (itself, or its base64 at one alignment), normalized."""

    text: str
    # For base64: where each character of `text` stands in the encoded blob, and how many letters and
    # digits the secret holds before each of its bytes, to count what a run of the blob spells out.
    positions: tuple[int, ...] = ()
    offset: int = 0  # bytes before the secret in the blob
    letters_before: tuple[int, ...] = ()

    def letters(self, begin: int, stop: int) -> int:
        """How many of the secret's letters and digits characters `begin`..`stop - 1` spell out."""
        if not self.positions:
            return stop - begin
        # A base64 character holds 6 bits: only bytes whose 8 bits all lie inside the run count.
        first = -(-6 * self.positions[begin] // 8) - self.offset
        end = 6 * (self.positions[stop - 1] + 1) // 8 - self.offset
        last = len(self.letters_before) - 1
        return self.letters_before[min(max(end, 0), last)] - self.letters_before[min(max(first, 0), last)]


def _spellings(secret: str) -> list[_Form]:
    """The secret as it is (and percent-encoded as UTF-8, which reads differently when it is not
    ASCII), and its base64 at the 3 byte alignments a blob may put it at."""
    forms = [_Form(normalized(secret)), _Form(normalized(quote(secret, safe="")))]
    raw = secret.encode()
    letters_before = (0, *itertools.accumulate(chr(byte).isalnum() for byte in raw))
    for offset in range(3):
        blob = base64.b64encode(b"\0" * offset + raw).decode()
        kept = [(i, ch.lower()) for i, ch in enumerate(blob) if ch.isalnum()]
        text = "".join(ch for _, ch in kept)
        forms.append(_Form(text, tuple(i for i, _ in kept), offset, tuple(letters_before)))
    return list({form.text: form for form in forms}.values())


class SecretFinder:
    """Finds and blanks the secrets it was built with; build it once per set of secrets (`finder`).

    A long-enough run of a spelling holds a whole block of it that starts at a multiple of the block
    size in the normalized text (a block is at most half a run). So the text is cut into blocks in
    C and looked up in a set; only a block that belongs to a spelling is looked at closer.
    """

    def __init__(self, secrets: Iterable[str], *, exact_min: int = 6) -> None:
        secrets = set(secrets)
        exact = {s for s in secrets if exact_min <= len(s) < MIN_RUN}
        forms: list[_Form] = []
        for secret in sorted(s for s in secrets if len(s) >= MIN_RUN):
            if len(normalized(secret)) < MIN_RUN:  # too few letters and digits: only its exact spelling is known
                exact.add(secret)
            else:
                forms += _spellings(secret)
        # Every block of every spelling, with where it sits in which spelling.
        self._blocks: dict[str, list[tuple[_Form, int]]] = {}
        for form in forms:
            for start in range(len(form.text) - _BLOCK + 1):
                self._blocks.setdefault(form.text[start : start + _BLOCK], []).append((form, start))
        # The same blocks as machine integers, for ASCII text read through a memoryview.
        self._ints = {int.from_bytes(block.encode(), sys.byteorder) for block in self._blocks if block.isascii()}
        exact |= {c for s in exact if len(c := clean_text(s, len(s) + 16)) >= max(exact_min, 6)}
        self._exact = sorted(exact, key=len, reverse=True)  # longest first: a secret holding another goes whole

    def __bool__(self) -> bool:
        return bool(self._blocks or self._exact)

    def found_in(self, text: str) -> bool:
        """True when `text` may hold a secret in any form (cheap: one block of a spelling is enough)."""
        return (bool(self._blocks) and bool(self._hits(normalized(text)))) or any(s in text for s in self._exact)

    def found_in_json(self, dump: str) -> bool:
        """Like `found_in`, for JSON text: True also when one of its strings, once decoded, may hold one.

        The finder reads JSON's escapes as what they stand for, except an escaped backslash (a
        literal "\\n" between two halves of a secret reads differently escaped): that answers True.
        """
        escaped = (json.dumps(s, ensure_ascii=only)[1:-1] for s in self._exact for only in (False, True))
        return "\\\\" in dump or self.found_in(dump) or any(secret in dump for secret in escaped)

    def redact(self, text: str) -> str:
        """`text` with every run of a secret replaced by `MARKER`; unchanged (the same object) if none."""
        if self._blocks and self._runs(normalized(text)):
            text = self._redact_runs(text)
        for secret in self._exact:
            if secret in text:
                text = text.replace(secret, MARKER)
        return text

    def _hits(self, flat: str) -> set[str]:
        """The blocks of a spelling that `flat` holds at multiples of the block size."""
        if len(flat) < 2 * _BLOCK - 1:
            return set()
        if flat.isascii():  # nearly always: the blocks are read as machine integers, in C
            data = flat.encode()
            found = self._ints.intersection(memoryview(data[: len(data) // _BLOCK * _BLOCK]).cast(_BLOCK_FORMAT))
            return {hit.to_bytes(_BLOCK, sys.byteorder).decode() for hit in found}
        return self._blocks.keys() & {flat[i : i + _BLOCK] for i in range(0, len(flat) - _BLOCK + 1, _BLOCK)}

    def _runs(self, flat: str) -> list[tuple[int, int]]:
        """Where in `flat` a long-enough run of a spelling lies, each extended as far as it matches."""
        runs: set[tuple[int, int]] = set()
        for block in self._hits(flat):
            at = flat.find(block)
            while at >= 0:
                for form, start in self._blocks[block]:
                    if run := _run_through(flat, at, form, start):
                        runs.add(run)
                at = flat.find(block, at + 1)
        return _merged(runs)

    def _redact_runs(self, text: str) -> str:
        flat, starts, ends = _mapped(text)
        pieces: list[str] = []
        kept = 0  # text[:kept] is in `pieces` already
        for first, end in self._runs(flat):
            pieces += [text[kept : starts[first]], MARKER]
            kept = ends[end - 1]
        return "".join([*pieces, text[kept:]]) if pieces else text


def _run_through(flat: str, at: int, form: _Form, start: int) -> tuple[int, int] | None:
    """The run of `form` in `flat` through the block at `at` (its characters `start`...), if long enough."""
    first, begin = at, start
    while first > 0 and begin > 0 and flat[first - 1] == form.text[begin - 1]:
        first, begin = first - 1, begin - 1
    end, stop = at + _BLOCK, start + _BLOCK
    while end < len(flat) and stop < len(form.text) and flat[end] == form.text[stop]:
        end, stop = end + 1, stop + 1
    return (first, end) if form.letters(begin, stop) >= MIN_RUN else None


def _merged(runs: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for first, end in sorted(runs):
        if merged and first <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((first, end))
    return merged


@functools.lru_cache(maxsize=64)
def _cached(secrets: frozenset[str], exact_min: int) -> SecretFinder:
    return SecretFinder(secrets, exact_min=exact_min)


def finder(secrets: Iterable[str], *, exact_min: int = 6) -> SecretFinder:
    """The finder for these secrets, built once per distinct set (OAuth tokens change it now and then)."""
    return _cached(frozenset(s for s in secrets if s), exact_min)
