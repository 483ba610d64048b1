"""The composer's header cache changes nothing in the bytes sent."""

from __future__ import annotations

import re
from email.policy import SMTP

from mailproxy_core.dispatch import compose as compose_module
from mailproxy_core.dispatch.compose import RepeatedHeaderCache, compose, serialize
from mailproxy_core.models import Message

service_policy = compose_module.POLICY

PAYLOADS = [
    {"from": "Shop <shop@acme.example>", "to": "bob@example.com", "subject": "Hi", "body": "x"},
    {
        "from": "Négoce Café <café@acme.example>",
        "to": ["Zoë <zoe@example.com>", "al@example.com"],
        "cc": "Ünal <u@example.com>",
        "reply_to": "help@acme.example",
        "subject": "Votre commande — numéro 42 " * 4,
        "body": "Grazie mille è così\n" * 3,
        "html": "<p>Grazie</p>",
        "headers": {"X-Order": "42", "X-Long": "y" * 120},
    },
    {"from": "a@b.example", "to": "c@d.example", "subject": "long lines", "body": "z" * 2000},
]


def _bytes(policy) -> list[bytes]:
    compose_module.POLICY = policy
    try:
        out = []
        for round_ in range(2):  # the second round reads the cache
            for n, payload in enumerate(PAYLOADS):
                message = Message(
                    pk=n + 1, tenant_id="t", id=f"m{n}", account_id="a", status="sending",
                    priority=2, payload=payload,
                )  # fmt: skip
                mime, _envelope = compose(message)
                data = re.sub(rb"Date: [^\r]*", b"", serialize(mime))
                data = re.sub(rb"=+[0-9]+==", b"<boundary>", data)  # random per message
                out.append(data + bytes([round_]))
        return out
    finally:
        compose_module.POLICY = service_policy


def test_cached_headers_compose_the_same_bytes():
    assert _bytes(SMTP.clone(header_factory=RepeatedHeaderCache())) == _bytes(SMTP)
