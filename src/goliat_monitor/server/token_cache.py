"""What a replica last read about an API token, kept a few seconds so the hot path reads no table."""

from __future__ import annotations

import time

TOKEN_CACHE_S = 5.0
"""How long a replica trusts what it last read about an API token: a revoked token stops working
on every replica within this time, and the ingest hot path reads the token table at most this often
per token."""


class TokenCache:
    """API-token hash -> (name, role) or None, remembered for `TOKEN_CACHE_S` in this process."""

    MAX_ENTRIES = 4096  # wrong tokens are cached too; a flood of them only ever refills this

    def __init__(self, ttl_s: float = TOKEN_CACHE_S) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, tuple[str, str] | None]] = {}

    def get(self, token_hash: str) -> tuple[bool, tuple[str, str] | None]:
        entry = self._entries.get(token_hash)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, token_hash: str, value: tuple[str, str] | None) -> None:
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[token_hash] = (time.monotonic() + self.ttl_s, value)

    def clear(self) -> None:
        self._entries.clear()
