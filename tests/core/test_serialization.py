"""Hostile property values: encoding never raises and never drops the event."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import math
import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from posthog_integrations.core.serialization import encode_event, make_json_safe
from posthog_integrations.sink import LocalSink
from tests.conftest import ClientFactory


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: datetime.date


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class Exploding(dict):  # type: ignore[type-arg]
    def items(self) -> Any:
        raise RuntimeError("broken mapping")


def roundtrip(value: Any) -> Any:
    return json.loads(encode_event({"v": value}))["v"]


def test_common_types_convert() -> None:
    moment = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    ident = uuid.UUID(int=5)
    assert roundtrip(moment) == "2025-01-02T03:04:05+00:00"
    assert roundtrip(datetime.date(2025, 1, 2)) == "2025-01-02"
    assert roundtrip(decimal.Decimal("1.5")) == 1.5
    assert roundtrip(ident) == str(ident)
    assert sorted(roundtrip({1, 2})) == [1, 2]
    assert roundtrip((1, "a")) == [1, "a"]
    assert roundtrip(b"bytes\xff") == "bytes\ufffd"
    assert roundtrip(Color.RED) == "red"
    assert roundtrip(Point(1, datetime.date(2025, 1, 2))) == {"x": 1, "y": "2025-01-02"}


def test_values_json_cannot_send_become_safe() -> None:
    cycle: list[Any] = [1]
    cycle.append(cycle)
    value = {
        "nan": math.nan, "inf": -math.inf, "cycle": cycle, "bad": BadRepr(),
        "dec_nan": decimal.Decimal("NaN"), "exploding": Exploding(a=1), (1, 2): "tuple key",
    }
    safe = roundtrip(value)
    assert safe["nan"] is None
    assert safe["inf"] is None
    assert safe["cycle"] == [1, None]
    assert safe["bad"] == "<unrepresentable BadRepr>"
    assert safe["dec_nan"] is None
    assert isinstance(safe["exploding"], str)
    assert safe["(1, 2)"] == "tuple key"


def test_deep_nesting_is_cut_not_crashed() -> None:
    value: Any = "leaf"
    for _ in range(5000):
        value = [value]
    encoded = encode_event({"deep": value})
    assert encoded.startswith(b'{"deep":[[')


def test_make_json_safe_copies() -> None:
    inner = {"a": [1, 2]}
    safe = make_json_safe({"inner": inner})
    inner["a"].append(3)
    assert safe == {"inner": {"a": [1, 2]}}


json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(),
    st.decimals(), st.datetimes(), st.dates(), st.uuids(), st.sampled_from(list(Color)),
    st.builds(BadRepr), st.builds(object),
)
hostile = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.one_of(st.text(), st.integers(), st.none()), children, max_size=5),
        st.frozensets(st.integers(), max_size=5),
        st.tuples(children, children),
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(properties=st.dictionaries(st.text(), hostile, max_size=8))
def test_any_properties_encode_to_valid_json(properties: dict[str, Any]) -> None:
    decoded = json.loads(encode_event({"event": "e", "properties": properties}))
    assert decoded["event"] == "e"
    assert set(decoded["properties"]) == set(properties)


def test_hostile_values_travel_end_to_end(sink: LocalSink, make_client: ClientFactory) -> None:
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    client = make_client()
    properties = {"cycle": cycle, "nan": math.nan, "obj": BadRepr(), "when": datetime.date.today()}
    assert client.capture("hostile", distinct_id="u", properties=properties) is not None
    cycle["later"] = "mutated after capture"
    client.flush()
    [event] = sink.events()
    assert event["properties"]["cycle"] == {"self": None}
    assert event["properties"]["nan"] is None
