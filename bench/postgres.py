"""A throw-away PostgreSQL: the OS's server binaries, `initdb` into a temp dir, a free loopback port.

Used by the tests, the benchmarks and `./dev replicas`.

Password authentication over TCP (scram-sha-256), as a production database has it, so the URL's
password is exercised (and must never be seen in results or logs). `fsync` is off: durability across
power loss is PostgreSQL's to prove, not these tests'. Each test gets its own schema (`fresh_url`),
the replicas tests their own database.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote


def binaries() -> Path | None:
    """The directory of the newest installed PostgreSQL server binaries (Debian keeps them off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    """A loopback port free right now (for the tests' and benchmarks' own servers too)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Postgres:
    port: int
    user: str
    password: str

    def url(self, database: str = "postgres", schema: str | None = None) -> str:
        url = f"postgresql://{self.user}:{quote(self.password)}@127.0.0.1:{self.port}/{database}"
        return url + (f"?options={quote(f'-csearch_path={schema}')}" if schema else "")

    def sql(self, statement: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as connection:
            connection.execute(statement)  # pyright: ignore[reportArgumentType]

    def fresh_url(self) -> str:
        """A URL whose tables land in a new, empty schema of their own."""
        schema = f"t_{secrets.token_hex(6)}"
        self.sql(f"CREATE SCHEMA {schema}")
        return self.url(schema=schema)

    def fresh_database(self) -> str:
        name = f"d_{secrets.token_hex(6)}"
        self.sql(f"CREATE DATABASE {name}")
        return self.url(name)


@contextmanager
def running() -> Iterator[Postgres]:
    """Start a throw-away cluster; stop it and remove its files at the end."""
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL server binaries not found: install the postgresql package (.ci/run does)")
    workdir = Path(tempfile.mkdtemp(prefix="parts-mcp-pg-"))
    # initdb refuses to run as root: as root, the cluster belongs to the OS's postgres account.
    as_user: list[str] = []
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(workdir, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    server = Postgres(free_port(), "parts", secrets.token_urlsafe(18))
    pwfile = workdir / "pw"
    pwfile.write_text(server.password)
    if as_user:
        os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
    data = workdir / "data"
    run = [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", server.user, f"--pwfile={pwfile}"]
    initdb = [*run, "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8"]
    subprocess.run(initdb, check=True, capture_output=True)
    pwfile.unlink()
    options = f"-p {server.port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    ctl = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(workdir / "log")]
    subprocess.run([*ctl, "-w", "-t", "60", "-o", options, "start"], check=True, capture_output=True)
    try:
        yield server
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)
