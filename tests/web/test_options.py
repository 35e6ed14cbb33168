"""Request options: trusted proxies, exclude globs, and errors that name the setting."""

from __future__ import annotations

from typing import Any

import pytest

from posthog_integrations import ConfigurationError
from posthog_integrations.web import ProxyTrust, RequestOptions


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "client"),
    [
        (0, "10.0.0.1", "203.0.113.9", "10.0.0.1"),  # no proxy: the peer is the client
        (1, "10.0.0.1", "203.0.113.9", "203.0.113.9"),
        (1, "10.0.0.1", "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # a spoofed first hop
        (2, "10.0.0.1", "203.0.113.9, 10.0.0.2", "203.0.113.9"),
        # fewer forwarded hops than proxies: the leftmost was written by the client, and the
        # peer is a proxy, so no address can be trusted
        (3, "10.0.0.1", "203.0.113.9", None),
        (2, "10.0.0.1", "203.0.113.9", None),
        (1, "10.0.0.1", None, None),
        (1, "10.0.0.1", "", None),
        # no peer address (a unix socket): the hops are still counted from the right
        (1, None, "6.6.6.6, 203.0.113.9", "203.0.113.9"),
        (2, None, "6.6.6.6, 203.0.113.9, 10.0.0.2", "203.0.113.9"),
        (2, None, "203.0.113.9", None),
        (0, None, "6.6.6.6", None),  # no proxy: the header is the client's own
        (["10.0.0.0/8"], "10.0.0.1", "6.6.6.6, 203.0.113.9, 10.0.0.2", "203.0.113.9"),
        (["10.0.0.0/8"], "198.51.100.7", "203.0.113.9", "198.51.100.7"),  # untrusted peer
        ("10.0.0.0/8, 127.0.0.1", "127.0.0.1", "203.0.113.9", "203.0.113.9"),
        ("*", "10.0.0.1", "203.0.113.9, 10.0.0.2", "203.0.113.9"),
        ("*", "10.0.0.1", "6.6.6.6, 203.0.113.9", "6.6.6.6"),  # documented: the leftmost wins
        ("*", "10.0.0.1", None, "10.0.0.1"),
        (["::1"], "::1", "2001:db8::1", "2001:db8::1"),
        (1, "10.0.0.1", "not-an-ip", None),  # garbage is absent, not an error
        (0, None, None, None),
    ],
)
def test_client_ip(trusted: Any, peer: str | None, forwarded: str | None,
                   client: str | None) -> None:
    assert ProxyTrust(trusted).client_ip(peer, forwarded) == client


@pytest.mark.parametrize("bad", [-1, True, ["10.0.0.0/33"], "nonsense", [object()], 1.5])
def test_bad_trusted_proxies_name_the_setting(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="trusted_proxies"):
        RequestOptions(trusted_proxies=bad)


def test_exclude_globs_compile_to_one_matcher() -> None:
    options = RequestOptions(exclude_paths=["/health*", "/static/*", "*.ico"])
    assert options.excluded is not None
    matched = [p for p in ("/health", "/healthz", "/static/a/b.css", "/favicon.ico", "/api")
               if options.excluded(p)]
    assert matched == ["/health", "/healthz", "/static/a/b.css", "/favicon.ico"]
    assert RequestOptions().excluded is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"capture_exceptions": "yes"}, "capture_exceptions: expected True or False"),
        ({"capture_pageviews": 1}, "capture_pageviews"),
        ({"exclude_paths": ["health"]}, "exclude_paths: each entry must be a path glob"),
        ({"exclude_paths": 5}, "exclude_paths: expected a list"),
        ({"extra_tags": {"a": 1}}, "extra_tags: expected a callable"),
        ({"request_filter": "myapp.filter"}, "request_filter: expected a callable"),
        ({"identify": "myapp.current_user_id"}, "identify: expected a callable"),
        ({"exclude_path": ["/health"]}, "unknown request option 'exclude_path'; did you mean "
                                        "'exclude_paths'"),
    ],
)
def test_bad_options_fail_at_configuration_naming_the_setting(settings: dict[str, Any],
                                                              message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RequestOptions.build(settings)


def test_a_single_glob_string_is_accepted() -> None:
    assert RequestOptions(exclude_paths="/health").exclude_paths == ("/health",)
