"""The server's one logging setup: a log line is ours, whatever a vendor wrote into it.

Vendor text reaches log records (codes, messages, exception texts), so every formatted record is

- redacted: the configured secrets are blanked in every spelling `parts_mcp.redact` knows
  (`add_secrets`, called by `build_server` with the settings' secrets);
- escaped: CR, LF and every other non-printable character (controls, escape sequences, bidi and
  zero-width characters, line and paragraph separators) are written the way `repr` writes them
  (``\\r``, ``\\n``, ``\\x1b``, ``\\u202e``), so one record is always one physical line and no
  vendor can start a line of its own. Tracebacks are escaped too: they stay on their record's line.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable

from parts_mcp.redact import SecretFinder, finder

__all__ = ["FORMAT", "SafeFormatter", "add_secrets", "configure", "escaped"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MIN_SECRET_LENGTH = 6  # as in tool results: a shorter value would blank ordinary words
_NAMED = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}

_lock = threading.Lock()
_secrets: set[str] = set()
_finder: SecretFinder = finder(())


def add_secrets(secrets: Iterable[str]) -> None:
    """Blank these in every log line from now on (added to those already known: one process may build
    several servers)."""
    global _finder
    with _lock:
        new = {s for s in secrets if s} - _secrets
        if new:
            _secrets.update(new)
            _finder = finder(_secrets, exact_min=MIN_SECRET_LENGTH)


def escaped(text: str) -> str:
    """`text` with every non-printable character written as an escape, as `repr` does."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


class SafeFormatter(logging.Formatter):
    """Formats as usual, then redacts and escapes the whole line: message, arguments, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        return escaped(_finder.redact(super().format(record)))


def configure(level: int) -> None:
    """Log to stderr (stdout may be the MCP protocol) through `SafeFormatter`, at `level`.

    Like `logging.basicConfig`, this does nothing to a root logger that already has handlers.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
