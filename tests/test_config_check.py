"""`parts-mcp config check FILE` (issue 13): a bad config fails before anything starts, with one precise
message naming the file and the key path once; a good one is summarised without a secret value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from parts_mcp.cli import main

VENDOR = '[vendors.skynet]\nkind = "skynet"\nbase_url = "https://api.skynetparts.com/api/b2b"\napi_key = "k"\n'

# (config text, key path the error must name, words it must say)
BAD = {
    "base_url not a URL": (
        '[vendors.skynet]\nkind = "skynet"\nbase_url = "not a url"\napi_key = "k"\n',
        "vendors.skynet.base_url",
        "absolute http:// or https:// URL",
    ),
    "base_url without a host": (
        VENDOR.replace("https://api.skynetparts.com/api/b2b", "https:///api"),
        "vendors.skynet.base_url",
        "absolute http:// or https:// URL",
    ),
    "base_url of another scheme, in a section named apart from its kind": (
        '[vendors.main]\nkind = "skynet"\nbase_url = "ftp://files.example"\napi_key = "k"\n',
        "vendors.main.base_url",
        "absolute http:// or https:// URL",
    ),
    "order_vendors names no configured vendor": (
        '[guard]\norder_vendors = ["skynet", "skynett"]\n\n' + VENDOR,
        "guard.order_vendors[1]",
        "'skynett' is not a configured vendor; configured vendors: skynet",
    ),
    "no vendors": ('[guard]\nconfirmation = "token"\n', "vendors", "sandbox = true"),
    "empty file": ("", "vendors", "sandbox = true"),
    "unset environment variable": (
        VENDOR.replace('api_key = "k"', 'api_key = "${PARTS_MCP_TEST_UNSET_KEY}"'),
        "vendors.skynet.api_key",
        "environment variable PARTS_MCP_TEST_UNSET_KEY is not set",
    ),
    "missing credential": (VENDOR.replace('api_key = "k"\n', ""), "vendors.skynet.api_key", "Field required"),
    "unknown kind": ('[vendors.acme]\nkind = "acme"\n', "vendors.acme.kind", "this version supports"),
    "wrong type": ('[server]\nport = "http"\n\n' + VENDOR, "server.port", "valid integer"),
    "unknown key": ('[guard]\nconfirmaton = "token"\n\n' + VENDOR, "guard.confirmaton", "Extra inputs"),
    "exposed without auth": ('[server]\ntransport = "http"\nhost = "0.0.0.0"\n\n' + VENDOR, "", "refusing to serve"),
}


def check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str, Path]:
    path = tmp_path / "parts-mcp.toml"
    path.write_text(text)
    code = main(["config", "check", str(path)])
    out, err = capsys.readouterr()
    return code, out, err, path


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_config_gives_one_precise_message_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    monkeypatch.delenv("PARTS_MCP_TEST_UNSET_KEY", raising=False)
    text, key, words = BAD[case]
    code, out, err, path = check(tmp_path, text, capsys)
    assert code == 2 and out == ""
    [line] = err.strip().splitlines()  # one message
    assert line.startswith(f"parts-mcp: config file {path}") or "refusing to serve" in line, line
    assert line.count(str(path)) <= 1 and words in line, line
    if key:
        assert len(re.findall(rf"(?<![\w.]){re.escape(key)}:", line)) == 1, line  # the key path, said once
        assert line.count("skynet.skynet") == 0, line


def test_a_toml_syntax_error_names_the_file_and_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err, path = check(tmp_path, "[server]\nport = 80\nport = 81\n", capsys)
    assert code == 2
    assert f"config file {path} is not valid TOML" in err and "line 3" in err


def test_a_missing_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(tmp_path / "nowhere.toml")]) == 2
    assert f"config file {tmp_path / 'nowhere.toml'} does not exist" in capsys.readouterr().err


CANARIES = {
    "CHECK_SKYNET_KEY": "canary-skynet-key-7f3e9a1c",
    "CHECK_KEYLOOP_ID": "canary-keyloop-id-2b8d4e6f",
    "CHECK_KEYLOOP_SECRET": "canary-keyloop-secret-5a1c9e3b",
    "CHECK_WEBHOOK": "https://hooks.example/canary-webhook-8e2f4a6d",
    "CHECK_TOKEN_SECRET": "canary-token-secret-1d3f5b7c",
}

GOOD = """
[server]
transport = "http"
port = 9876
shutdown_grace_seconds = 7

[server.auth]
issuer = "https://login.example.com/"
audience = "http://127.0.0.1:9876/mcp"
jwks_url = "https://login.example.com/jwks.json"

[guard]
confirmation = "approval"
max_order_total = "900.00"
max_daily_total_per_vendor = "5000.00"
max_daily_total_per_principal = "1500.00"
approval_required_above = "400.00"
order_vendors = ["skynet"]
token_secret = "${CHECK_TOKEN_SECRET}"

[approvals]
open_browser = false
webhook_url = "${CHECK_WEBHOOK}"
public_url = "https://parts.example.com"

[store]
path = "STORE"

[vendors.skynet]
kind = "skynet"
base_url = "https://user:canary-url-password-4c6e8a0b@api.skynetparts.com/api/b2b"
api_key = "${CHECK_SKYNET_KEY}"

[vendors.dealer]
kind = "keyloop"
base_url = "https://api.eu.keyloop.io"
enterprise_id = "acme-motors"
store_id = "store-01"
client_id = "${CHECK_KEYLOOP_ID}"
client_secret = "${CHECK_KEYLOOP_SECRET}"
customer_id = "00000000-0000-0000-0000-000000000000"
"""


def test_a_good_config_is_summarised_without_secrets_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    store = tmp_path / "ledger.sqlite3"
    code, out, err, path = check(tmp_path, GOOD.replace("STORE", str(store)), capsys)
    assert code == 0, err
    for secret in [*CANARIES.values(), "canary-url-password-4c6e8a0b"]:
        assert secret not in out + err
    assert f"config file {path}" in out
    assert "http://127.0.0.1:9876/mcp" in out and "bearer tokens from https://login.example.com/" in out
    assert "7 s" in out
    assert "skynet: kind skynet, https://***@api.skynetparts.com/api/b2b, orders; credentials: api_key" in out
    assert "dealer: kind keyloop, https://api.eu.keyloop.io, read only; credentials: client_id, client_secret" in out
    assert "confirmation: approval" in out
    assert "per order 900.00; per vendor per day 5000.00; per person per day 1500.00; four-eyes above 400.00" in out
    assert f"store:        {store}" in out
    assert "webhook (URL not shown: a secret)" in out and "browser" not in out
    assert not store.exists()  # nothing started: not even the ledger was created


def test_the_sandbox_selected_in_the_file_needs_no_vendor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _, _ = check(tmp_path, '[server]\nsandbox = true\n\n[guard]\norder_vendors = ["keyloop"]\n', capsys)
    assert code == 0
    assert "the embedded sandbox" in out and "keyloop" in out


def test_serve_refuses_a_config_with_no_vendor_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "parts-mcp.toml"
    path.write_text('[store]\npath = "ledger.sqlite3"\n')
    assert main(["serve", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"config file {path}: vendors: no vendor is configured" in err and "sandbox = true" in err
