"""The ledger's files: the SQLite database and its sidecars owner-only, and the key kept beside them."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

SIDECARS = ("-wal", "-shm", "-journal")


def owner_only(path: Path) -> None:
    """Create the database file for this OS account only (and its directory, 0700, when missing).

    The file is made 0600 before SQLite opens it: SQLite gives its -wal, -shm and -journal files the
    database's own mode, so they follow. Not a umask around connect: the umask is process-wide and
    would change the files other threads create meanwhile.
    """
    if not path.parent.is_dir():
        # Only the last directory is ours to make private; parents made on the way keep the usual mode.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    tighten(path)


def tighten(path: Path) -> None:
    """Make the database and its sidecar files 0600 where they are looser, saying so in the log."""
    for file in (path, *(path.with_name(path.name + suffix) for suffix in SIDECARS)):
        _tighten_one(file)


def _tighten_one(file: Path) -> None:
    try:
        mode = stat.S_IMODE(file.stat().st_mode)
    except FileNotFoundError:
        return
    if not mode & 0o077:
        return
    try:
        file.chmod(0o600)
    except OSError as exc:
        logger.warning("%s is open to other accounts (mode %o) and could not be made 0600: %s", file, mode, exc)
        return
    logger.warning("%s was open to other accounts (mode %o); it is now 0600 (owner only)", file, mode)


def key_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".key")


def load_key(db_path: Path) -> bytes:
    """The ledger's HMAC key from `<database>.key` (0600), made on first use.

    Why a key file and not one derived from guard.token_secret: the key must stay the same for the
    life of the ledger, while the token secret is something an administrator should be free to
    rotate (every intent would then read as tampered); and a SQLite ledger serves the processes of
    one host, which all reach a file beside it. It is kept out of the database so that an edit made
    through the database alone (the sqlite3 shell, a DB browser, a restored copy) cannot re-seal.
    """
    file = key_path(db_path)
    if not file.exists():
        _make_key(file)
    _tighten_one(file)
    try:
        key = bytes.fromhex(file.read_text(encoding="ascii").strip())
    except (ValueError, UnicodeDecodeError):
        key = b""
    if len(key) < 32:
        raise ValueError(f"{file} is not a parts-mcp ledger key; restore the original key file")
    return key


def _make_key(file: Path) -> None:
    spare = file.with_name(f"{file.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secrets.token_hex(32) + "\n")
        out.flush()
        os.fsync(out.fileno())
    try:
        # A link never replaces a file: two processes starting at once end up with the one same key.
        os.link(spare, file)
    except FileExistsError:
        pass
    finally:
        spare.unlink()
    directory = os.open(file.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the key must outlive a power cut as surely as the rows it seals
    finally:
        os.close(directory)
