"""Reading and decoding a capture request's body, within size limits."""

from __future__ import annotations

import json
import zlib
from typing import Any

from werkzeug.wrappers import Request

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_DECODED_BYTES",
    "BadRequest",
    "PayloadTooLarge",
    "decode_body",
    "decode_encoded",
    "gunzip",
    "read_body",
]

# Twice the library's own largest batch (5 MiB); a gzip body is limited both as sent and inflated.
MAX_BODY_BYTES = 10 << 20
MAX_DECODED_BYTES = 10 << 20
_READ_CHUNK = 1 << 16
# Small pieces keep the leftover input zlib copies after each gzip member small.
_INFLATE_PIECE = 1 << 10
_GZIP_WBITS = 16 + zlib.MAX_WBITS


class BadRequest(Exception):
    """The body could not be decoded; the message is safe to send back."""


class PayloadTooLarge(Exception):
    """The body is over a size limit; the message is safe to send back."""


def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body as sent, refusing more than ``limit`` bytes before reading them all."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"body is {declared} bytes; the sink accepts at most {limit}")
    stream = request.stream
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(_READ_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over {limit} bytes, the most the sink accepts")
        chunks.append(chunk)


def gunzip(data: bytes, limit: int = MAX_DECODED_BYTES) -> bytes:
    """Inflate gzip ``data`` (one or more members), refusing more than ``limit`` bytes out.

    Input goes in small pieces, so neither the output nor the leftover input copied at the
    end of each member grows past what the limits allow.
    """
    out: list[bytes] = []
    size = 0
    position = 0
    pending = b""
    inflater = zlib.decompressobj(_GZIP_WBITS)
    while True:
        if pending:
            piece, pending = pending, b""
        elif position < len(data):
            piece = data[position : position + _INFLATE_PIECE]
            position += len(piece)
        else:
            break
        if inflater.eof:  # another member follows, maybe after zero padding
            piece = piece.lstrip(b"\0")
            if not piece:
                continue
            inflater = zlib.decompressobj(_GZIP_WBITS)
        try:
            chunk = inflater.decompress(piece, limit + 1 - size)
        except zlib.error as exc:
            raise BadRequest(f"body is not valid gzip: {exc}") from None
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"body inflates to over {limit} bytes, the most the sink accepts"
            )
        out.append(chunk)
        if inflater.eof:
            pending = inflater.unused_data
    if not inflater.eof:
        raise BadRequest("body is not valid gzip: it ends before its end-of-stream marker")
    return b"".join(out)


def inflate(data: bytes, limit: int = MAX_DECODED_BYTES) -> bytes:
    """Inflate a zlib-wrapped deflate stream (``Content-Encoding: deflate``), within ``limit``."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"body is not valid deflate (zlib) data: {exc}") from None
    if len(out) > limit:
        raise PayloadTooLarge(f"body inflates to over {limit} bytes, the most the sink accepts")
    if not inflater.eof:
        raise BadRequest("body is not valid deflate (zlib) data: it ends early")
    return out


def unzstd(data: bytes, limit: int = MAX_DECODED_BYTES) -> bytes:
    """Decompress a zstd body within ``limit`` (needs the zstandard package)."""
    import io

    import zstandard

    try:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
            chunks: list[bytes] = []
            size = 0
            while size <= limit:
                chunk = reader.read(min(_READ_CHUNK, limit + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            out = b"".join(chunks)
    except zstandard.ZstdError as exc:
        raise BadRequest(f"body is not valid zstd: {exc}") from None
    if len(out) > limit:
        raise PayloadTooLarge(f"body inflates to over {limit} bytes, the most the sink accepts")
    return out


def decode_encoded(raw: bytes, encoding: str) -> Any:
    """Parse a body sent with ``Content-Encoding: encoding`` ("" when plain)."""
    encoding = encoding.strip().lower()
    if encoding == "gzip":
        raw = gunzip(raw)
    elif encoding == "deflate":
        raw = inflate(raw)
    elif encoding == "zstd":
        raw = unzstd(raw)
    elif encoding not in ("", "identity"):
        raise BadRequest(f"unsupported Content-Encoding {encoding[:40]!r}")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None


def decode_body(raw: bytes, compressed: bool) -> Any:
    """Parse a capture body, gunzipping it first when ``compressed``."""
    if compressed:
        raw = gunzip(raw)
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
