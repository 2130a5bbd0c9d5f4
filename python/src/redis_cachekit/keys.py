"""Key names, as the module builds them.

The memory tier needs a key's name before any round trip, so the package
builds the names itself: ``plain`` keys are the original services' keys byte
for byte; ``tagged`` keys carry the Redis Cluster hash tag the module adds.
Both are checked against the server's ``CACHE.KEY`` in the tests. The memory
tier files its entries under these exact names, which are the names the
server's invalidations carry.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

KeyStyle = Literal["plain", "tagged"]

USER_PREFIX = "user:"
PERMISSIONS_PREFIX = "user_permissions:"
SESSION_PREFIX = "session:"
USER_ROLES_PREFIX = "user_with_roles:"
DOCUMENTS_PREFIX = "popular_documents:"
SEARCH_PREFIX = "search:"
RAG_PREFIX = "rag_response:"
TRANSLATION_PREFIX = "translation:"
EMBEDDING_PREFIX = "embedding:"
RATELIMIT_PREFIX = "rate_limit:"

#: The prefixes of every cached kind: what the memory tier tracks.
CACHED_PREFIXES: tuple[str, ...] = (
    USER_PREFIX,
    PERMISSIONS_PREFIX,
    SESSION_PREFIX,
    USER_ROLES_PREFIX,
    DOCUMENTS_PREFIX,
    SEARCH_PREFIX,
    RAG_PREFIX,
    TRANSLATION_PREFIX,
    EMBEDDING_PREFIX,
)

SLOTS = 16384
_TAG_ALPHABET = b"0123456789abcdefghijklmnopqrstuvwxyz"


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def filters_json(filters: Mapping[str, Any] | None) -> str:
    """The filters as the original service hashes them."""
    return json.dumps(filters or {}, sort_keys=True)


def crc16(data: bytes) -> int:
    """CRC16-CCITT (XModem), the checksum Redis Cluster hashes keys with."""
    return binascii.crc_hqx(data, 0)


def key_slot(key: bytes) -> int:
    """The cluster slot of a key, honouring `{...}` hash tags as Redis does."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return crc16(key[start + 1 : end]) % SLOTS
    return crc16(key) % SLOTS


@functools.cache
def _slot_tags() -> tuple[str, ...]:
    """For every slot, the first tag over `[0-9a-z]` (shortest first, digits
    little-endian) that hashes to it: the module's own table."""
    tags: list[str | None] = [None] * SLOTS
    missing = SLOTS
    base = len(_TAG_ALPHABET)
    for length in range(1, 5):
        for n in range(base**length):
            buf = bytearray()
            for _ in range(length):
                buf.append(_TAG_ALPHABET[n % base])
                n //= base
            slot = crc16(bytes(buf)) % SLOTS
            if tags[slot] is None:
                tags[slot] = buf.decode()
                missing -= 1
                if missing == 0:
                    return tuple(t or "" for t in tags)
    return tuple(t or "" for t in tags)


def slot_tag(slot: int) -> str:
    return _slot_tags()[slot]


class KeyScheme:
    """The key names of one key style (``CACHE.KEY`` without the round trip)."""

    def __init__(self, style: KeyStyle = "plain") -> None:
        self.style: KeyStyle = style

    def _id(self, ident: str) -> str:
        return f"{{{ident}}}" if self.style == "tagged" else ident

    def user(self, user_id: str) -> str:
        return USER_PREFIX + self._id(user_id)

    def permissions(self, user_id: str) -> str:
        return PERMISSIONS_PREFIX + self._id(user_id)

    def session(self, telegram_id: str) -> str:
        return SESSION_PREFIX + self._id(telegram_id)

    def user_with_roles(self, user_id: str) -> str:
        return USER_ROLES_PREFIX + self._id(user_id)

    def documents(self, limit: int, category: str | None) -> str:
        return f"{DOCUMENTS_PREFIX}{limit}:{self._id(category or 'all')}"

    def search(self, query: str, user_id: str, filters: Mapping[str, Any] | None) -> str:
        digest = md5_hex(f"{query}:{user_id}:{filters_json(filters)}")
        return SEARCH_PREFIX + (self._id(user_id) if self.style == "tagged" else "") + digest

    def rag(self, query: str, user_id: str, context_hash: str) -> str:
        digest = md5_hex(f"{query}:{user_id}:{context_hash}")
        return RAG_PREFIX + (self._id(user_id) if self.style == "tagged" else "") + digest

    def translation(self, text: str, source_lang: str, target_lang: str) -> str:
        tag = ""
        if self.style == "tagged":
            tag = "{" + slot_tag(key_slot(text.encode("utf-8"))) + "}"
        return f"{TRANSLATION_PREFIX}{tag}{md5_hex(text)}:{source_lang}:{target_lang}"

    def embedding(self, text: str, model: str) -> str:
        """``embedding:<md5(text)>:<model>``; tagged as a translation, by text."""
        tag = ""
        if self.style == "tagged":
            tag = "{" + slot_tag(key_slot(text.encode("utf-8"))) + "}"
        return f"{EMBEDDING_PREFIX}{tag}{md5_hex(text)}:{model}"

    def ratelimit(self, action: str, identifier: str) -> str:
        return f"{RATELIMIT_PREFIX}{action}:{self._id(identifier)}"


def style_of(probe: bytes | str) -> KeyStyle:
    """The key style from the server's answer to ``CACHE.KEY user 0``."""
    return "tagged" if probe in (b"user:{0}", "user:{0}") else "plain"
