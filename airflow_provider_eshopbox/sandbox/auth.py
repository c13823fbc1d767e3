"""Credentials and access tokens: the sandbox accepts only tokens it minted, until expiry or revocation.

Secrets are derived from the seed (same seed -> same credentials) and carry recognisable prefixes
(``sbx-secret-``, ``sbx-rt-``, ``sbx-at-``) so leak scans can search logs for them.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass
from typing import Literal

from .clock import SandboxClock

TokenState = Literal["ok", "unknown", "expired"]


def _derive(seed: int, label: str, length: int = 40) -> str:
    return hashlib.sha256(f"eshopbox-sandbox:{seed}:{label}".encode()).hexdigest()[:length]


@dataclass(frozen=True)
class Credentials:
    """The custom-app credentials a client needs (api doc §1.1)."""

    client_id: str
    client_secret: str
    refresh_token: str

    @classmethod
    def for_seed(cls, seed: int) -> Credentials:
        """Deterministic credentials for a seed."""
        return cls(
            client_id=f"sbx-client-{_derive(seed, 'client', 16)}",
            client_secret=f"sbx-secret-{_derive(seed, 'secret')}",
            refresh_token=f"sbx-rt-{_derive(seed, 'refresh')}",
        )


@dataclass(frozen=True)
class MintedToken:
    """A token response's moving parts."""

    access_token: str
    id_token: str
    expires_in: int
    refresh_token: str | None


class TokenRegistry:
    """Mints access tokens, validates them against the clock, revokes them all on demand."""

    def __init__(self, credentials: Credentials, clock: SandboxClock, ttl: int, rotate: bool = False) -> None:
        self.credentials = credentials
        self.clock = clock
        self.ttl = ttl
        self.rotate = rotate
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}
        self._revoked: set[str] = set()
        self._id_tokens: list[str] = []
        self._refresh_tokens = {credentials.refresh_token}
        self.current_refresh_token = credentials.refresh_token

    def check_client(self, client_id: str, client_secret: str) -> bool:
        """True when the client id and secret match (constant-time compare)."""
        return secrets.compare_digest(client_id, self.credentials.client_id) and secrets.compare_digest(
            client_secret, self.credentials.client_secret
        )

    def check_refresh_token(self, token: str) -> bool:
        """True for the seeded refresh token and (with rotation) any one this registry issued."""
        with self._lock:
            return token in self._refresh_tokens

    def mint(self) -> MintedToken:
        """A fresh, unique access token valid for ``ttl`` seconds of sandbox time."""
        token = f"sbx-at-{secrets.token_hex(24)}"
        id_token = f"sbx-id-{secrets.token_hex(16)}"
        new_rt: str | None = None
        with self._lock:
            self._expiry[token] = self.clock.now() + self.ttl
            self._id_tokens.append(id_token)
            if self.rotate:
                new_rt = f"sbx-rt-{secrets.token_hex(20)}"
                self._refresh_tokens.add(new_rt)
                self.current_refresh_token = new_rt
        return MintedToken(token, id_token, self.ttl, new_rt)

    def minted(self) -> list[str]:
        """Every access token minted so far (live, expired or revoked), in minting order."""
        with self._lock:
            return list(self._expiry)

    def issued_secrets(self) -> list[str]:
        """Every credential-like value this registry handed out or accepts: access tokens, id tokens,
        refresh tokens (seeded and rotated) and the client secret -- what a leak scan searches for."""
        with self._lock:
            return [
                self.credentials.client_secret,
                *sorted(self._refresh_tokens),
                *self._expiry,
                *self._id_tokens,
            ]

    def state(self, token: str | None) -> TokenState:
        """``ok``, ``unknown`` (never minted / missing) or ``expired`` (past ttl or revoked)."""
        if not token:
            return "unknown"
        with self._lock:
            expiry = self._expiry.get(token)
            if expiry is None:
                return "unknown"
            if token in self._revoked or self.clock.now() >= expiry:
                return "expired"
            return "ok"

    def revoke_all(self) -> int:
        """Invalidate every token minted so far; returns how many were live."""
        with self._lock:
            live = set(self._expiry) - self._revoked
            self._revoked |= live
            return len(live)
