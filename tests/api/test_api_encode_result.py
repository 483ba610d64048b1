"""``encode_result``: stored JSON text (``JSONText``) is embedded in an answer as its value."""

from __future__ import annotations

import json

from mailproxy_core.api.generate import encode_result
from mailproxy_core.db.jsontext import JSONText, encoded_json


def test_json_text_is_embedded_as_the_value_it_encodes():
    stored = '{"messages":[{"id":"m1","to":["a@example.com"]}],"n":1.5}'
    result = [{"id": 7, "payload": JSONText(stored), "note": "plain"}]
    assert json.loads(encode_result(result)) == [
        {"id": 7, "payload": json.loads(stored), "note": "plain"}
    ]


def test_plain_strings_stay_strings_even_when_they_look_like_markers():
    lookalike = "mailproxy-embedded-00000000000000000000000000000000-0"
    result = {"a": JSONText("[1,2]"), "b": lookalike, "c": '{"not": "embedded"}'}
    assert json.loads(encode_result(result)) == {
        "a": [1, 2],
        "b": lookalike,
        "c": '{"not": "embedded"}',
    }


def test_many_embedded_values_keep_their_places():
    result = [JSONText(json.dumps({"n": n})) for n in range(12)]
    assert json.loads(encode_result(result)) == [{"n": n} for n in range(12)]


def test_null_and_empty_columns_are_null():
    assert encoded_json(None) is None and encoded_json("") is None
    assert json.loads(encode_result({"payload": encoded_json(None)})) == {"payload": None}
