"""The rollout, variant and holdout hashes of local evaluation (spec §10.1), bit for bit.

A hash is the first 15 hex digits (60 bits) of the SHA-1 of ``key + separator + id + salt``,
divided by ``0xFFFFFFFFFFFFFFF`` as a float. The engine joins the bytes itself (a flag's
prefix is encoded once per definitions) and calls :func:`fraction`; :func:`hash_fraction` is
the spec's form, for tests and tools.
"""

from __future__ import annotations

import struct
from hashlib import sha1

LONG_SCALE = float(0xFFFFFFFFFFFFFFF)
_FIRST_64_BITS = struct.Struct(">Q").unpack_from

VARIANT_SALT = b"variant"
HOLDOUT_PREFIX = b"holdout-"


def fraction(data: bytes) -> float:
    """The hash of already joined bytes, in [0, 1]."""
    # The top 60 of the first 64 bits are the first 15 hex digits. Dividing an int by a float
    # rounds the int to a float first, exactly as parsing the hex digits and dividing does.
    first: int = _FIRST_64_BITS(sha1(data).digest())[0]
    return (first >> 4) / LONG_SCALE


def hash_fraction(key: str, identifier: object, salt: str = "", separator: str = ".") -> float:
    """``hash(key, id, salt, sep)`` of the spec; ``identifier`` is stringified with ``str``."""
    return fraction(f"{key}{separator}{identifier}{salt}".encode())


def flag_prefix(flag_key: str) -> bytes:
    """The bytes every rollout and variant hash of ``flag_key`` starts with."""
    return f"{flag_key}.".encode()


def rollout_fraction(prefix: bytes, bucketing: bytes) -> float:
    """Where ``bucketing`` falls in the flag's rollout; in iff ``<= percentage / 100``."""
    return fraction(prefix + bucketing)


def variant_fraction(prefix: bytes, bucketing: bytes) -> float:
    """Where ``bucketing`` falls in the flag's variant table."""
    return fraction(prefix + bucketing + VARIANT_SALT)


def holdout_fraction(bucketing: bytes) -> float:
    """Where ``bucketing`` falls for holdouts (``holdout-<id>``, a dash, not a dot)."""
    return fraction(HOLDOUT_PREFIX + bucketing)
