"""Reading requests: tracing header sanitizing, URLs, ASGI scopes and WSGI environs."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posthog_integrations.web import RequestInfo, sanitize_header
from posthog_integrations.web.request import tracing_ids_from_asgi, tracing_ids_from_wsgi
from tests.web.header_spec import assert_first_sanitized, assert_sanitized

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("user-1", "user-1"),
        ("  user-1\t", "user-1"),
        ("us\x00er\x1b-1\x7f\x9f", "user-1"),
        ("", None),
        ("   \r\n", None),
        (b"user-\xc3\xa9", "user-é"),
        (b"\xff\xfe", None),
        (["", 3, " second "], "second"),
        (42, None),
        (None, None),
        ("x" * 5000, "x" * 1000),
        # format characters: bidi controls, zero-width characters, the BOM, the soft hyphen
        ("\u200buser-1\u200d", "user-1"),
        ("us\u202eer-1\u202c", "user-1"),
        ("\ufeffuser-1", "user-1"),
        ("user\u2066-1\u2069\u00ad", "user-1"),
        (b"\xe2\x80\x8b", None),
        (" \u200b user-1 \u200b ", "user-1"),
        # what JavaScript writes for a missing value
        ("null", None),
        ("NULL", None),
        (" undefined\t", None),
        ("Undefined", None),
        ("\u200bnull\u200b", None),
        (b"null", None),
        (["null", "undefined", "user-2"], "user-2"),
        ("nullable", "nullable"),
        ("null-1", "null-1"),
        ("null" + " " * 996 + "x", None),  # the cap leaves only "null"
    ],
)
def test_sanitize_header(raw: Any, clean: str | None) -> None:
    assert sanitize_header(raw) == clean


sent_text = st.one_of(
    st.text(),
    st.lists(st.sampled_from(["\u200b", "\u202e", "\ufeff", "\x00", " ", "\t", "a", "null",
                              "undefined", "NuLl", "é", "\u2028", "\u00a0"]),
             max_size=20).map("".join),
)


@given(sent_text)
def test_sanitized_text_keeps_the_promise(raw: str) -> None:
    assert_sanitized(raw.encode("utf-8"), sanitize_header(raw))


@given(st.binary())
def test_sanitized_bytes_keep_the_promise(raw: bytes) -> None:
    assert_sanitized(raw, sanitize_header(raw))


@given(st.lists(sent_text, max_size=3))
def test_a_list_gives_its_first_value_that_says_something(raws: list[str]) -> None:
    assert_first_sanitized([raw.encode("utf-8") for raw in raws], sanitize_header(raws))


@given(st.one_of(st.integers(), st.none(), st.floats(), st.dictionaries(st.text(), st.text())))
def test_other_types_are_absent(raw: Any) -> None:
    assert sanitize_header(raw) is None


def asgi_scope(**overrides: Any) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http", "method": "GET", "scheme": "http", "path": "/items/7",
        "root_path": "", "query_string": b"token=secret", "server": ("testserver", 80),
        "client": ("10.0.0.5", 51000), "headers": [(b"host", b"example.com")],
    }
    scope.update(overrides)
    return scope


def test_asgi_request_reads_tracing_headers_and_metadata() -> None:
    info = RequestInfo.from_asgi(asgi_scope(headers=[
        (b"host", b"example.com"),
        (b"user-agent", b"Mozilla/5.0"),
        (b"x-posthog-distinct-id", b" user-1 "),
        (b"x-posthog-session-id", b"session\x00-1"),
    ]))
    assert (info.method, info.path, info.user_agent) == ("GET", "/items/7", "Mozilla/5.0")
    assert (info.distinct_id, info.session_id, info.peer) == ("user-1", "session-1", "10.0.0.5")
    assert info.url() == "http://example.com/items/7"
    assert info.url(with_query=True) == "http://example.com/items/7?token=secret"


def test_asgi_url_without_host_header_uses_the_server_and_drops_default_ports() -> None:
    assert RequestInfo.from_asgi(asgi_scope(headers=[])).url() == "http://testserver/items/7"
    info = RequestInfo.from_asgi(asgi_scope(headers=[], server=("api.local", 8443),
                                            scheme="https"))
    assert info.url() == "https://api.local:8443/items/7"


def test_credentials_in_the_host_never_reach_the_url() -> None:
    info = RequestInfo.from_asgi(asgi_scope(headers=[(b"host", b"admin:hunter2@example.com")]))
    assert info.url() == "http://example.com/items/7"
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_HOST": "u:p@example.com"}
    assert RequestInfo.from_wsgi(environ).url() == "http://example.com/"


def test_asgi_root_path_appears_once() -> None:
    included = RequestInfo.from_asgi(asgi_scope(root_path="/api", path="/api/items"))
    legacy = RequestInfo.from_asgi(asgi_scope(root_path="/api", path="/items"))
    assert included.path == legacy.path == "/api/items"


def test_websocket_scope_has_no_method() -> None:
    scope = asgi_scope(type="websocket", scheme="ws")
    del scope["method"]
    info = RequestInfo.from_asgi(scope)
    assert info.method is None
    assert info.url() == "ws://example.com/items/7"


def test_asgi_repeated_forwarded_for_headers_form_one_chain() -> None:
    info = RequestInfo.from_asgi(asgi_scope(headers=[
        (b"x-forwarded-for", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2"),
    ]))
    assert info.forwarded_for == "1.1.1.1,2.2.2.2"


def test_wsgi_request_reads_headers_decoding_utf8_from_latin1() -> None:
    environ = {
        "REQUEST_METHOD": "POST", "wsgi.url_scheme": "https", "SERVER_NAME": "srv",
        "SERVER_PORT": "443", "SCRIPT_NAME": "/app", "PATH_INFO": "/caf\xc3\xa9",
        "QUERY_STRING": "a=1", "REMOTE_ADDR": "192.0.2.1",
        "HTTP_X_POSTHOG_DISTINCT_ID": "us\xc3\xa9r", "HTTP_X_POSTHOG_SESSION_ID": "\xff\xfe",
        "HTTP_USER_AGENT": "curl/8",
    }
    info = RequestInfo.from_wsgi(environ)
    assert (info.method, info.path, info.peer) == ("POST", "/app/café", "192.0.2.1")
    assert (info.distinct_id, info.session_id, info.user_agent) == ("usér", None, "curl/8")
    assert info.url() == "https://srv/app/caf%C3%A9"


def test_wsgi_host_falls_back_to_server_name_and_port() -> None:
    environ = {"REQUEST_METHOD": "GET", "SERVER_NAME": "srv", "SERVER_PORT": "8000"}
    assert RequestInfo.from_wsgi(environ).url() == "http://srv:8000/"


@given(st.dictionaries(
    st.sampled_from(["HTTP_HOST", "PATH_INFO", "SCRIPT_NAME", "HTTP_USER_AGENT",
                     "HTTP_X_POSTHOG_DISTINCT_ID", "QUERY_STRING", "SERVER_PORT",
                     "HTTP_X_FORWARDED_FOR"]),
    st.text(alphabet=st.characters(max_codepoint=255)),
))
def test_any_latin1_environ_is_read_without_error(environ: dict[str, str]) -> None:
    info = RequestInfo.from_wsgi(environ)
    assert info.url().startswith("http://")
    assert info.distinct_id is None or not CONTROL.search(info.distinct_id)


@given(st.lists(st.tuples(
    st.sampled_from([b"host", b"user-agent", b"x-posthog-distinct-id",
                     b"x-posthog-session-id", b"x-forwarded-for"]),
    st.binary(max_size=2000),
), max_size=6))
def test_any_asgi_header_bytes_are_read_without_error(headers: list[tuple[bytes, bytes]]) -> None:
    info = RequestInfo.from_asgi(asgi_scope(headers=headers))
    assert info.url().startswith("http://")
    for value in (info.distinct_id, info.session_id, info.user_agent):
        assert value is None or (len(value) <= 1000 and not CONTROL.search(value))


def test_a_repeated_tracing_header_gives_its_first_valid_value() -> None:
    scope = asgi_scope(headers=[
        (b"x-posthog-distinct-id", b" \x00 "), (b"x-posthog-distinct-id", b"second"),
        (b"x-posthog-distinct-id", b"third"), (b"x-posthog-session-id", b"s-1"),
    ])
    assert tracing_ids_from_asgi(scope) == ("second", "s-1")
    assert tracing_ids_from_asgi(asgi_scope()) == (None, None)


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (b"user-1", "user-1"),
        (b"null", None),
        (b" UNDEFINED ", None),
        (b"\xe2\x80\x8buser-1\xe2\x80\x8f", "user-1"),  # zero-width space, RTL mark
        (b"\xef\xbb\xbf", None),  # a lone BOM
    ],
)
def test_tracing_headers_are_sanitized_from_asgi_and_wsgi(sent: bytes, kept: str | None) -> None:
    scope = asgi_scope(headers=[(b"x-posthog-distinct-id", sent),
                                (b"x-posthog-session-id", sent)])
    environ = {"HTTP_X_POSTHOG_DISTINCT_ID": sent.decode("latin-1"),  # PEP 3333
               "HTTP_X_POSTHOG_SESSION_ID": sent.decode("latin-1")}
    assert tracing_ids_from_asgi(scope) == (kept, kept)
    assert tracing_ids_from_wsgi(environ) == (kept, kept)
