"""``encode_result``: stored JSON text (``JSONText``) is embedded in an answer as its value."""

from __future__ import annotations

import json

from mailproxy_core.api.generate import encode_result
from mailproxy_core.db.jsontext import JSONText, encoded_json
from tests.api.loop_turns import with_turns_counted


async def test_json_text_is_embedded_as_the_value_it_encodes():
    stored = '{"messages":[{"id":"m1","to":["a@example.com"]}],"n":1.5}'
    result = [{"id": 7, "payload": JSONText(stored), "note": "plain"}]
    assert json.loads(await encode_result(result)) == [
        {"id": 7, "payload": json.loads(stored), "note": "plain"}
    ]


async def test_plain_strings_stay_strings_even_when_they_look_like_markers():
    lookalike = "mailproxy-embedded-00000000000000000000000000000000-0"
    result = {"a": JSONText("[1,2]"), "b": lookalike, "c": '{"not": "embedded"}'}
    assert json.loads(await encode_result(result)) == {
        "a": [1, 2],
        "b": lookalike,
        "c": '{"not": "embedded"}',
    }


async def test_many_embedded_values_keep_their_places():
    result = [JSONText(json.dumps({"n": n})) for n in range(12)]
    assert json.loads(await encode_result(result)) == [{"n": n} for n in range(12)]


async def test_a_list_is_encoded_as_json_dumps_would():
    values = [[], {}, [{"a": [1, 2.5, None, True, "é"]}, "x", 3], ("t", 1)]
    for value in values:
        assert await encode_result(value) == json.dumps(value, ensure_ascii=False)


async def test_null_and_empty_columns_are_null():
    assert encoded_json(None) is None and encoded_json("") is None
    assert json.loads(await encode_result({"payload": encoded_json(None)})) == {"payload": None}


async def test_a_long_list_is_encoded_between_turns_of_the_loop():
    # 300 messages of 1,000 recipients: tens of milliseconds of encoding, several slices
    page = [
        {"id": f"m{n}", "to": [f"u{n}.{i}@example.com" for i in range(1000)]} for n in range(300)
    ]
    text, during = await with_turns_counted(encode_result(page))
    assert json.loads(text) == page
    assert during >= 2, "the other task never ran while the page was encoded"
