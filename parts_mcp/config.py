"""Configuration: a TOML file read into pydantic models, secrets only as `${ENV_VAR}` references.

No file (no `--config`, no `PARTS_MCP_CONFIG`) means the embedded sandbox: every vendor simulated
in-process, every result marked `sandbox: true`.
"""

from __future__ import annotations

import os
import re
import tomllib
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from parts_mcp.vendors import KINDS, REGISTRY, vendor_settings
from parts_mcp.vendors.base import VendorSettingsBase

ENV_VAR = "PARTS_MCP_CONFIG"
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and what to do."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AuthSettings(_Strict):
    """[server.auth]: the HTTP transport as an OAuth 2.1 protected resource (bearer JWTs from one issuer)."""

    issuer: str  # compared exactly with each token's `iss`
    audience: str  # this server's /mcp URL as clients reach it (RFC 8707 resource); must be in `aud`
    jwks_url: str
    name_claim: str = "sub"  # how a principal is shown; `sub` where the token lacks it
    # Host and Origin values accepted beyond loopback, exactly as clients send them: no wildcards.
    allowed_hosts: list[str] = Field(default_factory=list)
    allowed_origins: list[str] = Field(default_factory=list)
    leeway_seconds: int = Field(default=30, ge=0, le=300)  # clock skew allowed on exp / nbf / iat
    jwks_cache_seconds: int = Field(default=300, ge=0, le=86_400)
    # An unknown `kid` refetches the keys at most this often, so a flood of made-up kids cannot
    # turn the server into a load generator against the issuer.
    jwks_min_refresh_seconds: int = Field(default=30, ge=0, le=3600)

    @field_validator("issuer", "audience", "jwks_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not _is_http_url(value):
            raise ValueError(f"must be an http:// or https:// URL, not {value!r}")
        return value.strip()

    @field_validator("allowed_hosts", "allowed_origins")
    @classmethod
    def _no_wildcards(cls, values: list[str]) -> list[str]:
        if bad := [v for v in values if "*" in v or not v.strip()]:
            raise ValueError(f"list each value exactly (no wildcards, no empty entries): {bad!r}")
        return [v.strip() for v in values]


class ServerSettings(_Strict):
    transport: Literal["stdio", "http"] = "stdio"
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    # The simulated vendors, under this file's [guard] and [approvals]: try a mode on the sandbox.
    sandbox: bool = False
    # Over stdio, who orders (one user: no OAuth there); default the operating system's user name.
    principal: str | None = Field(default=None, min_length=1, max_length=200)
    auth: AuthSettings | None = None  # HTTP only; required to bind anywhere but loopback
    # On SIGTERM / SIGINT: how long calls in flight may still run; then they are answered as cut.
    shutdown_grace_seconds: float = Field(default=20.0, ge=0, le=3600)


class GuardSettings(_Strict):
    # auto: a form where the client can show one, else an approval page out of band; elicit: forms
    # only; approval: always the page; token: the model confirms (trusted automation only).
    confirmation: Literal["auto", "elicit", "approval", "token"] = "auto"
    approval_ttl_seconds: int = Field(default=900, ge=60, le=7 * 86_400)
    po_pattern: str = r"^[A-Za-z0-9][A-Za-z0-9._/-]{2,39}$"
    max_order_total: Decimal | None = Decimal("25000.00")
    # Per vendor and UTC day, over every order confirmed that day (placed, or possibly placed).
    max_daily_total_per_vendor: Decimal | None = None
    # Per person (the token's principal; over stdio the local user) and UTC day, across vendors.
    max_daily_total_per_principal: Decimal | None = None
    # Four-eyes: an order that may bill more needs a second person with orders:approve (never its requester).
    approval_required_above: Decimal | None = None
    # Vendors that may receive orders; None = every configured vendor. The others stay readable.
    order_vendors: list[str] | None = None
    read_only: bool = False
    token_ttl_seconds: int = Field(default=600, ge=30, le=86_400)
    # Where a vendor adds charges at creation (tax, shipping), an approval covers the previewed total
    # plus this percentage of it plus this flat amount; a higher bill is cancelled or reported.
    added_charges_percent: Decimal = Field(default=Decimal("10"), ge=0, le=100)
    added_charges_flat: Decimal = Field(default=Decimal("50.00"), ge=0)
    # Same vendor, same items under another PO within this many hours: named in the preview (0 = off).
    duplicate_window_hours: int = Field(default=24, ge=0, le=24 * 90)
    # Only needed when several server processes must accept each other's confirmation tokens.
    token_secret: SecretStr | None = None

    @field_validator("po_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


class StoreSettings(_Strict):
    """[store]: where the ledger lives. A SQLite file (`path`, the default) for one host, or a PostgreSQL
    database (`url`) shared by replicas."""

    path: Path | None = None
    # postgresql://user:password@host:5432/db: a secret (the password); give it as "${ENV}".
    url: SecretStr | None = None
    # PostgreSQL: the key that seals intents and chains the audit log, kept out of the database; the same
    # on every replica and for the life of the ledger (a SQLite ledger keeps its key in a file beside it).
    key: SecretStr | None = None
    pool_size: int = Field(default=10, ge=1, le=200)  # PostgreSQL connections per replica

    @model_validator(mode="after")
    def _one_store(self) -> StoreSettings:
        if self.url is None:
            if self.key is not None:
                raise ValueError("store.key: only a PostgreSQL ledger (store.url) takes a key; remove it")
            return self
        if self.path is not None:
            raise ValueError("store.path and store.url: give one, a SQLite file (path) or PostgreSQL (url)")
        # The message never repeats the URL: it may hold a password.
        if urlsplit(self.url.get_secret_value()).scheme not in ("postgresql", "postgres"):
            raise ValueError('store.url: must be a PostgreSQL URL, "postgresql://user:password@host:5432/db"')
        if self.key is None or len(self.key.get_secret_value()) < 32:
            raise ValueError(
                "store.key: a PostgreSQL ledger needs a key of at least 32 characters, the same on every replica, "
                'e.g. key = "${PARTS_MCP_LEDGER_KEY}" with the value from `python -c "import secrets; '
                'print(secrets.token_urlsafe(32))"`'
            )
        return self

    def resolved_path(self) -> Path:
        if self.path is not None:
            return self.path
        import platformdirs  # here, not at the top: a start whose config names the file never needs it

        return Path(platformdirs.user_data_dir("parts-mcp")) / "parts-mcp.sqlite3"


class ApprovalSettings(_Strict):
    """The channels that bring an approval link to a person, never to the model."""

    open_browser: bool = True  # the desktop case: the server runs on the user's own machine
    # The link in the body approves the order: the URL itself is treated as a secret (redacted everywhere).
    webhook_url: SecretStr | None = None
    public_url: str | None = None  # default: the server's own address (stdio: the loopback listener)
    port: int = Field(default=0, ge=0, le=65535)  # stdio: the loopback listener's port, 0 = any free port

    @field_validator("webhook_url")
    @classmethod
    def _webhook_is_http(cls, value: SecretStr | None) -> SecretStr | None:
        # The message is said without the URL: it is a secret.
        if value is not None and not _is_http_url(value.get_secret_value()):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_is_http(cls, value: str | None) -> str | None:
        if value is not None and not _is_http_url(value):
            raise ValueError(f"must be an http:// or https:// URL, not {value!r}")
        return value.strip().rstrip("/") if value is not None else None


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value.strip())
    return parts.scheme in ("http", "https") and bool(parts.netloc)


class Settings(_Strict):
    server: ServerSettings = ServerSettings()
    guard: GuardSettings = GuardSettings()
    store: StoreSettings = StoreSettings()
    approvals: ApprovalSettings = ApprovalSettings()
    # Each section read as its kind's settings (the vendor registry knows every kind).
    vendors: dict[str, Annotated[VendorSettingsBase, BeforeValidator(vendor_settings)]] = Field(default_factory=dict)
    # A chat waits for the answer: past this a vendor is reported as timed out beside the others' results.
    lookup_deadline: float = Field(default=8.0, gt=0)
    sandbox: bool = Field(default=False, description="Set by the loader when no config file is used")

    @model_validator(mode="after")
    def _sandbox_by_choice(self) -> Settings:
        if self.server.sandbox and not self.sandbox:
            return self.model_copy(update={"sandbox": True})
        return self

    def vendor_keys(self) -> list[str]:
        """The vendor keys the tools will know: the [vendors.*] sections, or on the sandbox its simulators."""
        if self.sandbox:
            return [kind for kind, entry in REGISTRY.items() if entry.simulator is not None]
        return list(self.vendors)

    @model_validator(mode="after")
    def _replicas_share_a_secret(self) -> Settings:
        # A confirmation previewed on one replica is confirmed on another: they must sign alike.
        if self.store.url is not None and self.guard.token_secret is None:
            raise ValueError(
                "guard.token_secret: a PostgreSQL ledger (store.url) is for replicas, and replicas must accept "
                "each other's confirmation tokens and approval pages: set the same token_secret on each "
                '(e.g. token_secret = "${PARTS_MCP_TOKEN_SECRET}")'
            )
        return self

    @model_validator(mode="after")
    def _order_vendors_configured(self) -> Settings:
        known = self.vendor_keys()
        for i, key in enumerate(self.guard.order_vendors or []):
            if key not in known:
                raise ValueError(
                    f"guard.order_vendors[{i}]: {key!r} is not a configured vendor; configured vendors: "
                    f"{', '.join(known) or 'none'}. Use the key of a [vendors.<key>] section."
                )
        return self

    @model_validator(mode="after")
    def _one_section_per_account(self) -> Settings:
        # One account has one budget and one PO namespace: a second section for it would give it two.
        seen: dict[tuple[str, str, str], str] = {}
        for name, section in self.vendors.items():
            where = (getattr(section, "kind", ""), _url_key(section.base_url))
            for mark in section.account_marks():
                other = seen.setdefault((*where, mark), name)
                if other != name:
                    key = mark.partition("=")[0]
                    raise ValueError(
                        f"vendors.{other} and vendors.{name} reach the same {where[0]} account (same base_url and "
                        f"{key}). One account has one budget and one PO namespace: configure it in one section."
                    )
        return self


def _url_key(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def example() -> str:
    """The documented example config: the general keys, then one section per registered vendor kind.

    `config.example.toml` is this text (a test keeps them equal; `parts-mcp config example` prints it).
    """
    header = resources.files("parts_mcp").joinpath("config_header.toml").read_text(encoding="utf-8")
    return header.rstrip() + "\n\n" + "\n".join(kind.example for kind in REGISTRY.values())


def _expand(value: Any, where: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}" if where else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(
                    f"{where}: refers to ${{{name}}}, but the environment variable {name} is not set. "
                    "Set it in the server's environment."
                )
            return os.environ[name]

        return _REFERENCE.sub(lookup, value)
    return value


def load(path: str | Path | None = None) -> Settings:
    """Settings from `path`, else from $PARTS_MCP_CONFIG, else the embedded sandbox.

    Raises:
        ConfigError: the file is missing, not TOML, or has a bad key; the message names the file and the
            key path (once), and the line where the TOML parser gives one.
    """
    chosen = path or os.environ.get(ENV_VAR)
    if not chosen:
        return Settings(sandbox=True)
    file = Path(chosen).expanduser()
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError(f"config file {file} does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None  # the parser names the line
    try:
        return _settings(raw)
    except ConfigError as exc:
        raise ConfigError(f"config file {file}: {exc}") from None


def _settings(raw: dict[str, Any]) -> Settings:
    for name, section in (raw.get("vendors") or {}).items():
        kind = section.get("kind") if isinstance(section, dict) else None
        if kind not in KINDS:
            raise ConfigError(f"vendors.{name}.kind: is {kind!r}; this version supports: {', '.join(KINDS)}.")
    try:
        return Settings.model_validate(_expand(raw))
    except ValidationError as exc:
        raise ConfigError("; ".join(_problem(err) for err in exc.errors(include_input=False))) from None


def _problem(err: Any) -> str:
    """One validation error as `key.path: what is wrong`, the key path said once."""
    message = str(err["msg"]).removeprefix("Value error, ")
    where = ".".join(str(p) for p in err["loc"])
    # A check of the whole file names its key itself; one inside a section would repeat the path.
    if not where or message.startswith(f"{where}.") or message.startswith(f"{where}:"):
        return message
    return f"{where}: {message}"


def serving(settings: Settings, source: str | Path | None = None) -> Settings:
    """The settings, if a server may start on them: a file with no vendor refuses, unless it selects the sandbox.

    Raises:
        ConfigError: nothing to serve; the message says how to configure a vendor or select the sandbox.
    """
    if settings.sandbox or settings.vendors:
        return settings
    where = f"config file {Path(source or os.environ.get(ENV_VAR, '')).expanduser()}: "
    raise ConfigError(
        f"{where}vendors: no vendor is configured, so the server would have nothing to serve. Add a "
        "[vendors.<key>] section (see `parts-mcp config example`), or set `sandbox = true` under [server] "
        "to serve the simulated vendors."
    )
