"""``{% load posthog %}{% posthog_bootstrap %}`` in a page served through the middleware: the
request's identity, flags, payloads and session, escaped so nothing ends the script early, and
read silently (no ``$feature_flag_called``, no flag riding on the request's events)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.template.backends.django import DjangoTemplates
from django.test import Client, override_settings
from django.urls import path

import posthog_integrations as posthog
from posthog_integrations.sink import LocalSink
from tests.conftest import API_KEY
from tests.flags.bootstrap_page import HOSTILE, PREFIX, SUFFIX, read_bootstrap

FLAGS = {"flags": {"new-checkout": "test", "dark-mode": True, "beta": False},
         "payloads": {"new-checkout": {"color": "blue"}}}
PAGE = "{% load posthog %}<html><head><script>" + PREFIX + "{% posthog_bootstrap %}" + SUFFIX + \
       "</script></head><body>shop</body></html>"
# The "as" form, placed later in the page.
PAGE_AS = "{% load posthog %}{% posthog_bootstrap as bootstrap %}<html><body><p>shop</p>" \
          "<script>" + PREFIX + "{{ bootstrap }}" + SUFFIX + "</script></body></html>"
HEADERS = {"HTTP_X_POSTHOG_DISTINCT_ID": "visitor-7", "HTTP_X_POSTHOG_SESSION_ID": "session-3"}


# The backend a project's TEMPLATES setting builds, which finds the installed apps' tag libraries.
TEMPLATES = DjangoTemplates({"NAME": "django", "DIRS": [], "APP_DIRS": False, "OPTIONS": {}})


def render(request: HttpRequest, source: str) -> HttpResponse:
    html = TEMPLATES.from_string(source).render(request=request)
    posthog.capture("page rendered")
    return HttpResponse(html)


def hostile(request: HttpRequest) -> HttpResponse:
    posthog.identify_context(HOSTILE)
    posthog.set_context_session(HOSTILE)
    return render(request, PAGE)


def identified_in_view(request: HttpRequest) -> HttpResponse:
    posthog.identify_context("user-9")
    return render(request, PAGE.replace("{% posthog_bootstrap %}",
                                        "{% posthog_bootstrap identified=True %}"))


urlpatterns = [
    path("identified-in-view/", identified_in_view),
    path("page/", lambda request: render(request, PAGE)),
    path("page-as/", lambda request: render(request, PAGE_AS)),
    path("hostile/", hostile),
]


@pytest.fixture
def flag_sink() -> Iterator[LocalSink]:
    with LocalSink(flags=FLAGS) as sink, override_settings(ROOT_URLCONF=__name__):
        posthog.configure(api_key=API_KEY, host=sink.url, retry_base_delay=0.02)
        try:
            yield sink
        finally:
            posthog.shutdown()


def delivered(sink: LocalSink, **filters: Any) -> list[dict[str, Any]]:
    assert posthog.flush(timeout=5)
    return sink.events(**filters)


@pytest.mark.parametrize("url", ["/page/", "/page-as/"])
def test_an_anonymous_page_gets_the_requests_bootstrap_read_silently(
    flag_sink: LocalSink, url: str
) -> None:
    html = Client().get(url, **HEADERS).content.decode()
    assert read_bootstrap(html) == {
        "distinctID": "visitor-7", "isIdentifiedID": False,
        "featureFlags": {"new-checkout": "test", "dark-mode": True, "beta": False},
        "featureFlagPayloads": {"new-checkout": {"color": "blue"}}, "sessionID": "session-3",
    }
    [event] = delivered(flag_sink, event="page rendered")
    assert not [name for name in event["properties"] if name.startswith("$feature")]
    assert "$active_feature_flags" not in event["properties"]
    assert flag_sink.events(event="$feature_flag_called") == []
    assert len([r for r in flag_sink.requests() if r.path.rstrip("/") == "/flags"]) == 1


def test_a_logged_in_user_is_bootstrapped_as_identified(flag_sink: LocalSink) -> None:
    member, _ = User.objects.get_or_create(username="bootstrapped-member")
    browser = Client()
    browser.force_login(member)
    found = read_bootstrap(browser.get("/page/", **HEADERS).content.decode())
    assert (found["distinctID"], found["isIdentifiedID"]) == (str(member.pk), True)
    assert found["featureFlags"]["new-checkout"] == "test"
    assert found["sessionID"] == "session-3"


def test_hostile_ids_stay_inside_the_script(flag_sink: LocalSink) -> None:
    found = read_bootstrap(Client().get("/hostile/").content.decode())
    assert (found["distinctID"], found["sessionID"]) == (HOSTILE, HOSTILE)
    assert found["featureFlags"]["dark-mode"] is True


def test_the_tag_takes_the_views_word_that_an_id_it_set_is_identified(
    flag_sink: LocalSink
) -> None:
    found = read_bootstrap(Client().get("/identified-in-view/", **HEADERS).content.decode())
    assert (found["distinctID"], found["isIdentifiedID"]) == ("user-9", True)
