"""The yielding JSON check and parser agree with ``too_deep`` and ``json.loads`` on every input."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from mailproxy_core import pacing
from mailproxy_core.api import json_yielding
from mailproxy_core.api.json_limits import MAX_JSON_DEPTH, too_deep
from mailproxy_core.api.json_yielding import loads_yielding, too_deep_yielding
from tests.api.loop_turns import with_turns_counted

SAMPLES = [
    "{}",
    "[]",
    " 1 ",
    '"text"',
    "null",
    '{"a": [1, 2.5, -3e4, true, false, null, "x\\"y\\\\", {"b": {}}], "a": 2}',
    '["\\u00e9", "é", "[{", "\\\\", "\\ud83d\\ude00"]',
    '  {  "messages" :  [ {"id": "m1", "to": ["a@b.c", "d@e.f"]} , {"id" :"m2"} ]  }  ',
    '{"k": ' + "[" * 30 + "]" * 30 + "}",
]
MALFORMED = [
    "",
    "[1, 2",
    '{"a" 1}',
    '{"a": 1,}',
    "[1 2]",
    "[1,]",
    "{a: 1}",
    "[1] x",
    '{"a": [1, 2, {"b": tru}]}',
    '["unterminated]',
    "[NaN]",
    "[1, Infinity]",
]


def _random_value(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(8 if depth < 6 else 5)
    if kind == 0:
        return rng.randrange(-(10**6), 10**6)
    if kind == 1:
        return rng.random()
    if kind == 2:
        return rng.choice([True, False, None])
    if kind in (3, 4):
        return "".join(rng.choice('ab"\\[]{}é \n') for _ in range(rng.randrange(12)))
    if kind in (5, 6):
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(6))]
    return {f"k{rng.randrange(5)}": _random_value(rng, depth + 1) for _ in range(rng.randrange(6))}


@pytest.fixture
def tiny_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces of a few bytes, so that small inputs are cut everywhere: inside strings, escapes,
    numbers and keywords for the parser, and depth carried across many chunks for the check."""
    monkeypatch.setattr(json_yielding, "FEED_BYTES", 3)
    monkeypatch.setattr(json_yielding, "CHUNK_BYTES", 3)
    monkeypatch.setattr(json_yielding, "SLICE_SECONDS", 0.0)
    monkeypatch.setattr(pacing, "PAUSE_SECONDS", 0.0)  # a pause after every piece: no sleeping


@pytest.mark.usefixtures("tiny_pieces")
async def test_parses_like_json_loads() -> None:
    rng = random.Random(7)
    texts = SAMPLES + [
        json.dumps(_random_value(rng, 0), indent=rng.choice([None, 1])) for _ in range(300)
    ]
    texts.append(json.dumps(list(range(500))))
    texts.append(json.dumps({f"k{n}": [n, {"x": str(n)}] for n in range(300)}))
    texts.append('{"a": 1, "b": 2, "a": 3}' * 1)
    for text in texts:
        expected = json.loads(text)
        got = await loads_yielding(text.encode())
        assert json.dumps(got) == json.dumps(expected), text  # same keys, order, values
    assert await loads_yielding('"x"'.encode("utf-16")) == "x"


@pytest.mark.usefixtures("tiny_pieces")
async def test_malformed_text_raises_value_error() -> None:
    for text in MALFORMED:
        if "NaN" not in text and "Infinity" not in text:  # Python's json takes these
            with pytest.raises(json.JSONDecodeError):
                json.loads(text)
        with pytest.raises(ValueError, match=r"error|BOM|JSON"):
            await loads_yielding(text.encode())


@pytest.mark.usefixtures("tiny_pieces")
async def test_unpaired_surrogates_are_refused_not_replaced() -> None:
    # the parser would turn them into "?": refused, as the service refuses such text anyway
    for text in ['["\\ud800"]', '["\\udc00"]', '["x\\ud83d", "\\ude00"]', '["\\\\\\ud800"]']:
        with pytest.raises(ValueError, match="unpaired surrogates"):
            await loads_yielding(text.encode())
    # pairs (how ASCII-only encoders write emoji), and a backslash that is itself escaped
    assert await loads_yielding(b'["\\ud83d\\ude00", "\\uD83D\\uDE00"]') == ["\U0001f600"] * 2
    assert await loads_yielding(b'["\\\\ud800"]') == ["\\ud800"]


@pytest.mark.usefixtures("tiny_pieces")
async def test_depth_check_agrees_with_too_deep() -> None:
    rng = random.Random(11)
    limit = MAX_JSON_DEPTH
    texts = [
        "[" * limit + "]" * limit,
        "[" * (limit + 1) + "]" * (limit + 1),
        '{"a":' * limit + "1" + "}" * limit,
        '{"a":[' * 17 + "1" + "]}" * 17,
        '["' + "[" * 1000 + '\\"' + "{" * 1000 + '"]',
        '["\\\\", ' + "[]" * 1000 + "]",
        '["\\\\", ' + "[" * 40 + "]" * 40 + "]",
        '["\\\\\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]',
        "[" + ",".join(["[[1]]"] * 1000) + "]",
        "[" * 100_000,
    ]
    for _ in range(200):
        depth = rng.randrange(limit - 3, limit + 4)
        texts.append('{"x":"[\\\\\\"\\\\", "y":' * depth + "0" + "}" * depth)
    for text in texts:
        assert await too_deep_yielding(text.encode()) == too_deep(text), text[:80]


async def test_large_body_yields_to_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    # about 3 MB: checked and parsed in many pieces, each handing the loop back
    monkeypatch.setattr(json_yielding, "SLICE_SECONDS", 0.0)
    monkeypatch.setattr(pacing, "PAUSE_SECONDS", 0.0)
    body = json.dumps({"messages": [{"id": f"m{n}", "to": ["a@b.c"] * 200} for n in range(2000)]})
    too_deep_found, checking = await with_turns_counted(too_deep_yielding(body.encode()))
    value, parsing = await with_turns_counted(loads_yielding(body.encode()))
    assert not too_deep_found and value == json.loads(body)
    assert checking > 0 and parsing > 0
