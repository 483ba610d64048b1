"""Validation of submitted messages (docs/api.md), without the database.

The database checks (tenant exists and is active, account exists, id already sent or in flight)
live in ``message_queue.py``; this module checks everything a message carries by itself and
turns it into the values stored beside the payload. Every problem is reported as the first
failing check's *reason*, worded exactly as docs/api.md lists them; checks the contract does not
word use ``invalid '<field>' field: <what>``.

Order of the checks (the first failure is the reason):

1. ``id`` (``Missing 'id' field``), then the identity fields ``tenant_id`` and ``account_id``;
2. (database) tenant, then account — see ``message_queue.py``;
3. unknown fields (``unknown field '<f>'`` with a did-you-mean hint), then the other required
   fields: ``from`` (or ``from_addr``, not both), ``to``, ``subject``, ``body`` (not required
   when ``html`` is given: an HTML-only message);
4. ``priority``, then the addresses (``from``/``from_addr``, ``return_path``, ``to``, ``cc``,
   ``bcc``, ``reply_to``), then the other fields (``subject``, ``body``, ``html``,
   ``message_id``, ``batch_code``, ``content_type``, ``headers``), then ``attachments``, then
   ``deferred_ts``.

A field that is not part of a message (``message_schema.MESSAGE_FIELDS``) is refused, so that a
typo (``atachments``) never silently drops data; the same holds inside attachment specs.

A field that is present with the value ``null`` counts as absent; so does an empty ``to`` (``""``
or ``[]``). An empty ``subject`` or ``body`` is allowed.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.headerregistry import HeaderRegistry
from typing import Any

from ..models import PRIORITY_LABELS
from .message_schema import ATTACHMENT_FIELDS, MESSAGE_FIELDS, unknown_field

MAX_UNIX_SECONDS = 253_402_300_799
"""9999-12-31T23:59:59Z: the largest ``deferred_ts`` accepted (fits every timestamp column)."""

DEFAULT_PRIORITY = 2
"""Priority of a message that gives none, when the batch gives no ``default_priority``."""

BUILTIN_FETCH_MODES = frozenset({"base64", "http_url", "endpoint", "filesystem", "storage"})
"""Attachment ``fetch_mode`` values of the API (installed fetcher plugins may add more)."""

CONTENT_TYPES = ("plain", "html")

DEFAULT_MAX_RECIPIENTS = 1000
"""Most recipients (``to`` + ``cc`` + ``bcc``) of one message, unless ``max_recipients`` says
otherwise (see docs/configuration.md for the choice)."""

MAX_SUBJECT_CHARS = 998
"""Longest accepted subject: RFC 5322's line limit, a bound no real subject comes near."""

SINGLE_ADDRESS_FIELDS = ("return_path",)
LIST_ADDRESS_FIELDS = ("to", "cc", "bcc", "reply_to")
OPTIONAL_TEXT_FIELDS = ("html", "message_id", "batch_code")

# An address the full parser is sure to accept without defects: a dot-atom local part, a
# dot-atom domain with at least one dot, optionally after a display name of plain words (no
# encoded words). Parsing with email.headerregistry costs ~70 us; this match ~1 us.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
_PLAIN_ADDRESS = rf"{_DOT_ATOM}@{_ATEXT}(?:\.{_ATEXT})+"
_FAST_ADDRESS = re.compile(rf"(?:{_PLAIN_ADDRESS}|{_ATEXT}(?: {_ATEXT})* <{_PLAIN_ADDRESS}>)")
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # printable ASCII except ':' (RFC 5322 ftext)
_LINE_BREAK = re.compile(r"[\r\n\x00]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_TAB = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_MIME_TYPE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_MD5_HEX = re.compile(r"[0-9a-fA-F]{32}")
_REGISTRY = HeaderRegistry()


def missing(field: str) -> str:
    """The reason for a required field that is absent or null."""
    return f"Missing '{field}' field"


def invalid(field: str, what: str) -> str:
    """The reason for a field of the wrong type or shape."""
    return f"invalid '{field}' field: {what}"


def shown(value: Any) -> str:
    """A submitted value as it appears inside a reason (``'7'``, ``'urgent'``)."""
    return value if isinstance(value, str) else repr(value)


def parse_priority(value: Any) -> int | None:
    """The priority 0..3 of ``value`` (an int, a digit string or a label), or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= 3 else None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in PRIORITY_LABELS:
            return PRIORITY_LABELS[text]
        if text in ("0", "1", "2", "3"):
            return int(text)
    return None


def parse_deferred_ts(value: Any) -> int:
    """Unix seconds from an int, a finite non-negative float (floored) or a digit string.

    At most :data:`MAX_UNIX_SECONDS`. Raises ``ValueError`` for anything else (``None`` is
    handled by the caller).
    """
    seconds: int | None = None
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int):
        seconds = value
    elif isinstance(value, float) and math.isfinite(value):
        seconds = math.floor(value)
    elif isinstance(value, str) and value.strip().isdigit():
        seconds = int(value.strip())
    if seconds is None or not 0 <= seconds <= MAX_UNIX_SECONDS:
        raise ValueError(value)
    return seconds


def is_storable(text: str) -> bool:
    """Whether both databases can store ``text``: no NUL, no unpaired UTF-16 surrogate.

    JSON lets a client send both (``"\\u0000"``, ``"\\ud800"``); PostgreSQL refuses NUL in text
    and neither driver can encode a lone surrogate, so such text is rejected at the edge rather
    than failing in the database.
    """
    return _UNSTORABLE.search(text) is None


def sendable(text: str) -> str:
    """``text`` with unpaired surrogates replaced by ``?``, so a response can echo it."""
    return text if is_storable(text) else text.encode("utf-8", "replace").decode("utf-8")


def split_addresses(text: str) -> list[str]:
    """Split a comma-separated address list, respecting quotes, ``<...>`` and comments.

    Empty pieces (``"a@x.org, "``) are dropped; each piece is stripped.
    """
    pieces: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    angle = comment = 0
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and (quoted or comment):
            escaped = True
        elif quoted:
            quoted = char != '"'
        elif char == '"':
            quoted = True
        elif char == "(":
            comment += 1
        elif char == ")" and comment:
            comment -= 1
        elif char == "<":
            angle += 1
        elif char == ">" and angle:
            angle -= 1
        elif char == "," and not angle and not comment:
            pieces.append("".join(current))
            current = []
            continue
        current.append(char)
    pieces.append("".join(current))
    return [piece.strip() for piece in pieces if piece.strip()]


def is_valid_address(text: str) -> bool:
    """Whether ``text`` is exactly one valid address (docs/api.md).

    It must parse with ``email.headerregistry`` to exactly one addr-spec (display name
    allowed, no group), with no parser defects, a non-empty local part and a domain containing a
    dot. Line breaks are never valid (header injection).
    """
    if _LINE_BREAK.search(text):
        return False
    if "=?" not in text and _FAST_ADDRESS.fullmatch(text):
        return True
    try:
        header = _REGISTRY("to", text)
    except (ValueError, TypeError, IndexError, AttributeError, NameError):
        # The stdlib parser raises these on some malformed input instead of recording a defect.
        return False
    addresses = header.addresses  # type: ignore[attr-defined]
    groups = header.groups  # type: ignore[attr-defined]
    if header.defects or len(addresses) != 1 or len(groups) != 1:
        return False
    if groups[0].display_name is not None:
        return False
    address = addresses[0]
    return bool(address.username) and "." in address.domain


@dataclass(frozen=True, slots=True)
class CheckedMessage:
    """The stored columns derived from one valid message."""

    priority: int
    deferred_ts: int | None
    batch_code: str | None


class MessageChecker:
    """Checks the content of messages; one per API call.

    Address verdicts are cached per distinct string for the checker's lifetime, so a batch
    that sends from one address to a few hundred recipients parses each address once.
    """

    def __init__(
        self,
        *,
        fetch_modes: Iterable[str] = BUILTIN_FETCH_MODES,
        default_priority: int = DEFAULT_PRIORITY,
        max_recipients: int = DEFAULT_MAX_RECIPIENTS,
    ) -> None:
        self._fetch_modes = frozenset(fetch_modes) | BUILTIN_FETCH_MODES
        self._default_priority = default_priority
        self._max_recipients = max_recipients
        self._addresses: dict[str, bool] = {}

    def identity(self, entry: Mapping[str, Any], default_tenant: str | None) -> str | None:
        """The reason ``id``, ``tenant_id`` or ``account_id`` is unusable, or ``None``.

        ``default_tenant`` stands in for a missing ``tenant_id`` (a tenant caller's own).
        """
        for name in ("id", "tenant_id", "account_id"):
            value = entry.get(name)
            if value is None and name == "tenant_id":
                value = default_tenant
            if value is None or value == "":
                return missing(name)
            if not isinstance(value, str):
                return invalid(name, "must be a string")
            if _CONTROL.search(value) or not is_storable(value):
                return invalid(name, "must not contain control characters")
        return None

    def content(self, entry: Mapping[str, Any]) -> str | CheckedMessage:
        """Check everything but the identity fields; a reason, or the derived columns."""
        reason = unknown_field(entry, MESSAGE_FIELDS)
        if reason is not None:
            return reason
        if entry.get("from") is not None and entry.get("from_addr") is not None:
            return invalid("from_addr", "give the sender as 'from' or as 'from_addr', not both")
        sender = "from" if entry.get("from") is not None else "from_addr"
        if entry.get(sender) is None:
            return missing("from")
        to = entry.get("to")
        if to is None or to == "" or to == []:
            return missing("to")
        if entry.get("subject") is None:
            return missing("subject")
        if entry.get("body") is None and entry.get("html") is None:
            return missing("body")
        raw_priority = entry.get("priority")
        if raw_priority is None:
            priority = self._default_priority
        else:
            parsed = parse_priority(raw_priority)
            if parsed is None:
                return f"invalid priority '{shown(raw_priority)}'"
            priority = parsed
        reason = self._check_addresses(entry) or self._check_fields(entry)
        if reason is None:
            reason = check_attachments(entry.get("attachments"), self._fetch_modes)
        if reason is not None:
            return reason
        raw_deferred = entry.get("deferred_ts")
        try:
            deferred = None if raw_deferred is None else parse_deferred_ts(raw_deferred)
        except ValueError:
            return invalid("deferred_ts", "must be unix seconds (a non-negative integer)")
        return CheckedMessage(priority, deferred, entry.get("batch_code"))

    def _valid(self, text: str) -> bool:
        verdict = self._addresses.get(text)
        if verdict is None:
            verdict = self._addresses[text] = is_valid_address(text)
        return verdict

    def _check_addresses(self, entry: Mapping[str, Any]) -> str | None:
        for name in ("from", "from_addr", *SINGLE_ADDRESS_FIELDS):
            value = entry.get(name)
            if value is None:
                continue
            if not isinstance(value, str):
                return invalid(name, "must be one address (a string)")
            if not self._valid(value.strip()):
                return f"invalid address '{value}' in '{name}'"
        lists: list[tuple[str, list[str]]] = []
        recipients = 0
        for name in LIST_ADDRESS_FIELDS:
            value = entry.get(name)
            if value is None:
                continue
            if isinstance(value, str):
                items = split_addresses(value)
            elif isinstance(value, list) and all(isinstance(item, str) for item in value):
                items = [item.strip() for item in value]
            else:
                return invalid(name, "must be a string or a list of strings")
            if name == "to" and not items:
                return missing("to")
            if name != "reply_to":
                recipients += len(items)
            lists.append((name, items))
        # counted before any address is parsed: the cap bounds the work per message
        if recipients > self._max_recipients:
            return (
                f"too many recipients: {recipients} in to, cc and bcc, at most "
                f"{self._max_recipients} per message (max_recipients); split the message"
            )
        for name, items in lists:
            for item in items:
                if not self._valid(item):
                    return f"invalid address '{item}' in '{name}'"
        return None

    def _check_fields(self, entry: Mapping[str, Any]) -> str | None:
        subject = entry.get("subject")
        if not isinstance(subject, str):
            return invalid("subject", "must be a string")
        if _LINE_BREAK.search(subject):
            return invalid("subject", "must not contain line breaks")
        if _CONTROL_BUT_TAB.search(subject):
            return invalid("subject", "must not contain control characters")
        if len(subject) > MAX_SUBJECT_CHARS:
            return invalid("subject", f"at most {MAX_SUBJECT_CHARS} characters")
        body = entry.get("body")
        if body is not None and not isinstance(body, str):
            return invalid("body", "must be a string")
        for name in OPTIONAL_TEXT_FIELDS:
            value = entry.get(name)
            if value is not None and not isinstance(value, str):
                return invalid(name, "must be a string")
        for name in ("body", "html"):
            value = entry.get(name)
            if value is not None and "\x00" in value:
                # RFC 5322 text cannot carry NUL; other control characters are legal in a body
                # and line breaks are written as CRLF whatever the client sent
                return invalid(name, "must not contain NUL characters (U+0000)")
        message_id = entry.get("message_id")
        if message_id is not None and _CONTROL.search(message_id):
            return invalid("message_id", "must not contain control characters")
        batch_code = entry.get("batch_code")
        if batch_code is not None and _CONTROL.search(batch_code):
            return invalid("batch_code", "must not contain control characters")
        content_type = entry.get("content_type")
        if content_type is not None and content_type not in CONTENT_TYPES:
            return invalid("content_type", "must be 'plain' or 'html'")
        return check_headers(entry.get("headers"))


def check_headers(headers: Any) -> str | None:
    """The reason ``headers`` is not an object of header names to single-line strings."""
    if headers is None:
        return None
    if not isinstance(headers, dict):
        return invalid("headers", "must be an object of header names to strings")
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            return invalid("headers", f"'{name}' is not a valid header name")
        if not isinstance(value, str):
            return invalid("headers", f"the value of '{name}' must be a string")
        if _LINE_BREAK.search(value):
            return invalid("headers", f"the value of '{name}' must not contain line breaks")
        if _CONTROL_BUT_TAB.search(value):
            return invalid("headers", f"the value of '{name}' must not contain control characters")
    return None


def check_attachments(attachments: Any, fetch_modes: frozenset[str]) -> str | None:
    """The reason ``attachments`` is not a list of attachment specs, or ``None``."""
    if attachments is None:
        return None
    if not isinstance(attachments, list):
        return "invalid attachment: 'attachments' must be a list"
    for number, spec in enumerate(attachments, start=1):
        if not isinstance(spec, dict):
            return f"invalid attachment: #{number} is not an object"
        unknown = unknown_field(spec, ATTACHMENT_FIELDS)
        if unknown is not None:
            return f"invalid attachment: #{number} has {unknown}"
        for name in ("filename", "storage_path"):
            value = spec.get(name)
            if not isinstance(value, str) or not value:
                return f"invalid attachment: #{number} has no '{name}'"
        if _CONTROL.search(spec["filename"]):
            # a header parameter: a line break would inject headers, a NUL cannot be carried
            return (
                f"invalid attachment: #{number} 'filename' must not contain control characters "
                "(line breaks, NUL, ...)"
            )
        mode = spec.get("fetch_mode")
        if mode is not None and mode not in fetch_modes:
            known = ", ".join(sorted(fetch_modes))
            return f"invalid attachment: #{number} has unknown fetch_mode '{shown(mode)}' ({known})"
        mime_type = spec.get("mime_type")
        if mime_type is not None and (
            not isinstance(mime_type, str) or not _MIME_TYPE.fullmatch(mime_type)
        ):
            return (
                f"invalid attachment: #{number} has an invalid 'mime_type' (expected "
                "type/subtype, e.g. application/pdf, without spaces or control characters)"
            )
        md5 = spec.get("content_md5")
        if md5 is not None and (not isinstance(md5, str) or not _MD5_HEX.fullmatch(md5)):
            return f"invalid attachment: #{number} content_md5 must be 32 hexadecimal digits"
        auth = spec.get("auth")
        if auth is not None and not isinstance(auth, dict):
            return f"invalid attachment: #{number} auth must be an object"
        storage_path = spec["storage_path"]
        if (mode == "base64" or storage_path.startswith(BASE64_PREFIX)) and not _is_base64(
            storage_path
        ):
            return f"invalid attachment: #{number} storage_path is not valid base64"
    return None


BASE64_PREFIX = "base64:"


def _is_base64(storage_path: str) -> bool:
    """Whether ``[base64:]<data>`` decodes (whitespace ignored), as the base64 fetcher will."""
    data = storage_path.removeprefix(BASE64_PREFIX)
    try:
        base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True
