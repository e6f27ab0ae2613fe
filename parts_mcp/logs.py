"""The server's one logging setup: a log line is ours, whatever a vendor wrote into it.

Vendor text reaches log records (codes, messages, exception texts), so every formatted record is

- redacted: the configured secrets are blanked in every spelling `parts_mcp.redact` knows
  (`add_secrets`, called by `build_server` with the settings' secrets);
- escaped: CR, LF and every other non-printable character (controls, escape sequences, bidi and
  zero-width characters, line and paragraph separators) are written the way `repr` writes them
  (``\\r``, ``\\n``, ``\\x1b``, ``\\u202e``), so one record is always one physical line and no
  vendor can start a line of its own. Tracebacks are escaped too: they stay on their record's line.

Two formats: `text` (`FORMAT`), and `json`, one object per line (ts, level, logger, msg, the record's
extra fields, exc), redacted field by field and written in ASCII (`\\uXXXX` escapes): a log shipper
reads it as is, and no control, bidi or line-separator character reaches the terminal either way.

Session chatter (a line per HTTP request of the HTTP libraries, per MCP session, per access) is
DEBUG; loggers whose DEBUG lines carry whole messages (tool results, prices, orders) stay at INFO.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from parts_mcp.redact import SecretFinder, finder

__all__ = ["FORMAT", "FORMATS", "LEVELS", "JsonFormatter", "SafeFormatter", "add_secrets", "configure", "escaped"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MIN_SECRET_LENGTH = 6  # as in tool results: a shorter value would blank ordinary words
_NAMED = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}
LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
ENV_LEVEL, ENV_FORMAT = "PARTS_MCP_LOG_LEVEL", "PARTS_MCP_LOG_FORMAT"
# A line per HTTP request, per MCP session, per access: shown at DEBUG only.
CHATTER = (
    "httpx2",
    "httpcore",
    "httpcore2",
    "mcp.server.streamable_http",
    "mcp.server.streamable_http_manager",
    "uvicorn.access",
    "stamina",
)
# Their DEBUG lines hold whole protocol messages (tool results: prices, orders): never below INFO.
PAYLOADS = ("sse_starlette", "mcp.server.sse", "mcp.client", "mcp.shared")
# What every LogRecord has; anything else on a record was passed as `extra` and goes into the JSON.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", "color_message"}

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


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the record's extra fields, and exc (a traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        found = _finder
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry |= {key: value for key, value in record.__dict__.items() if key not in _STANDARD and key not in entry}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        # Field by field: a secret is blanked where it stands, and the JSON around it stays whole.
        line = json.dumps(_redacted(entry, found), ensure_ascii=True, default=str)
        return line.replace("\x7f", "\\u007f")  # the one control character JSON leaves as it is


def _redacted(value: Any, found: SecretFinder) -> Any:
    if isinstance(value, str):
        return found.redact(value)
    if isinstance(value, dict):
        return {str(k): _redacted(v, found) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list | tuple):
        return [_redacted(v, found) for v in value]  # pyright: ignore[reportUnknownVariableType]
    if value is None or isinstance(value, bool | int | float):
        return value
    return found.redact(str(value))


def choose(level: str | None, fmt: str | None) -> tuple[str, str]:
    """The level and format to log with: the flags, else $PARTS_MCP_LOG_LEVEL / $PARTS_MCP_LOG_FORMAT, else
    info and text.

    Raises:
        ValueError: an environment variable names no level or format (its name and the choices said).
    """
    level = level or os.environ.get(ENV_LEVEL, "").strip().lower() or "info"
    fmt = fmt or os.environ.get(ENV_FORMAT, "").strip().lower() or "text"
    if level not in LEVELS:
        raise ValueError(f"{ENV_LEVEL}={level!r} is not a log level; use one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"{ENV_FORMAT}={fmt!r} is not a log format; use one of {', '.join(FORMATS)}")
    return level, fmt


def configure(level: str | int = "info", fmt: str = "text") -> None:
    """Log to stderr (stdout may be the MCP protocol), redacted and escaped, at `level`, as `fmt` (text|json).

    Like `logging.basicConfig`, this adds no handler to a root logger that already has one; the
    levels of the chatty loggers are set either way.
    """
    number = logging.getLevelNamesMapping()[level.upper()] if isinstance(level, str) else level
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else SafeFormatter(FORMAT))
    logging.basicConfig(level=number, handlers=[handler])
    for name in CHATTER:
        logging.getLogger(name).setLevel(max(number, logging.WARNING) if number > logging.DEBUG else number)
    for name in PAYLOADS:
        logging.getLogger(name).setLevel(max(number, logging.INFO))
