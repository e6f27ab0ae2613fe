"""A small, real OAuth token issuer for the tests: keys generated per run, JWKS served over HTTP.

`mint(...)` signs a token with any defect a test needs (wrong issuer, expired, `alg: none`, HS256
keyed with the public key, a key the JWKS does not publish, ...). The issuer counts JWKS fetches,
so tests can see how often the server asks for keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
_DROP = object()  # a claim value meaning "leave this claim out"


def new_rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def new_ec() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    """Signing keys by kid; `published` are the kids its JWKS lists (a key can sign without being listed)."""

    def __init__(self) -> None:
        self.keys: dict[str, PrivateKey] = {"rsa-1": new_rsa(), "ec-1": new_ec()}
        self.published: list[str] = ["rsa-1", "ec-1"]
        self.fetches = 0
        self.base = ""  # set once served: the issuer's URL, "http://127.0.0.1:PORT"
        self.audience = ""  # the resource tokens are minted for by default

    @property
    def issuer(self) -> str:
        return self.base + "/"

    @property
    def jwks_url(self) -> str:
        return self.base + "/jwks.json"

    def app(self) -> Starlette:
        async def jwks(_: Request) -> JSONResponse:
            self.fetches += 1
            return JSONResponse({"keys": [self.jwk(kid) for kid in self.published]})

        return Starlette(routes=[Route("/jwks.json", jwks)])

    def jwk(self, kid: str) -> dict[str, Any]:
        key = self.keys[kid]
        if isinstance(key, rsa.RSAPrivateKey):
            public = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            alg = "RS256"
        else:
            public = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
            alg = "ES256"
        return {**public, "kid": kid, "use": "sig", "alg": alg}

    def public_pem(self, kid: str) -> bytes:
        return (
            self.keys[kid]
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": "user-alice",
            "email": "alice@example.com",
            "iat": now,
            "exp": now + 600,
            "scope": "parts:read orders:write",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not _DROP}

    def mint(self, *, kid: str = "rsa-1", alg: str | None = None, key: PrivateKey | None = None, **claims: Any) -> str:
        """A token signed by `key` (default: the kid's), under `alg` (default: the key's own)."""
        signer = key or self.keys[kid]
        alg = alg or ("RS256" if isinstance(signer, rsa.RSAPrivateKey) else "ES256")
        return jwt.encode(self.claims(**claims), signer, algorithm=alg, headers={"kid": kid})

    def unsigned(self, **claims: Any) -> str:
        """`alg: none`: a token anyone could write."""
        return self._raw({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, self.claims(**claims), b"")

    def hs256_with_public_key(self, kid: str = "rsa-1", **claims: Any) -> str:
        """The classic confusion attack: HMAC keyed with the (public) RSA key, hoping it is used as a secret.
        PyJWT refuses to make one, so it is put together by hand."""
        header = {"alg": "HS256", "typ": "JWT", "kid": kid}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(self.claims(**claims)).encode())}"
        signature = hmac.new(self.public_pem(kid), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"

    @staticmethod
    def _raw(header: dict[str, Any], claims: dict[str, Any], signature: bytes) -> str:
        return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}.{_b64(signature)}"


DROP = _DROP
