"""Reading posthog-js's bootstrap back out of a rendered page, the way a browser splits it."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

# A page template's script: the bootstrap is the object between the two markers.
PREFIX = "window.bootstrap = "
SUFFIX = ";"
# A value that would end the script element, open a comment, or end a JS string in old engines.
HOSTILE = "</script><script>alert(1)</script><!--\u2028\u2029&"


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self._inside = True
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._inside = False

    def handle_data(self, data: str) -> None:
        if self._inside:
            self.scripts[-1] += data


def read_bootstrap(html: str) -> dict[str, Any]:
    """The bootstrap of ``html``, which must hold exactly one script element and nothing that
    could have ended it early or opened a comment in it."""
    assert len(re.findall("</script", html, flags=re.IGNORECASE)) == 1, html
    assert "<!--" not in html, html
    assert "\u2028" not in html, html
    assert "\u2029" not in html, html
    parser = _Scripts()
    parser.feed(html)
    parser.close()
    assert len(parser.scripts) == 1, parser.scripts
    [script] = parser.scripts
    assert script.startswith(PREFIX), script
    assert script.endswith(SUFFIX), script
    found = json.loads(script[len(PREFIX):-len(SUFFIX)])
    assert isinstance(found, dict)
    return found
