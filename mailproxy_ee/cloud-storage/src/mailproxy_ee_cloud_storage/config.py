"""Mount configs and storage URLs, checked offline and turned into client options.

A tenant's mount config (``storages/add``) and a storage URL (``s3://bucket/prefix``) both
become a :class:`Target`: the protocol, the bucket or container, a path prefix inside it, and
the keyword arguments of the fsspec filesystem (s3fs, gcsfs or adlfs) that reaches it. Nothing
here opens a connection: a bad config is refused with ``ConfigurationError`` naming every
missing, unknown or malformed key, which ``storages/add`` answers with 422.

Accepted keys per protocol:

- ``s3``: ``bucket``; optional ``prefix``, ``region``, ``endpoint_url``, ``access_key_id``,
  ``secret_access_key`` (both keys or neither);
- ``gcs``: ``bucket``; optional ``prefix``, ``project``, ``credentials_json`` (a service
  account key, as JSON text or object), ``endpoint_url``;
- ``azure``: ``container``, ``account_name``; optional ``prefix``, one of ``account_key``,
  ``sas_token``, ``connection_string``; ``endpoint_url``.

``public_base_url`` is accepted and ignored (the kernel adds it for rewritten large files;
cloud links are the store's own presigned URLs). Credentials left out come from the
environment's default chain (instance roles, workload identity, the clouds' environment
variables) unless the plugin's ``mount_default_credentials`` setting forbids it for mounts.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from mailproxy_core import ConfigurationError

from .settings import AzureDefaults, CloudStorageSettings, GcsDefaults, S3Defaults

Protocol = Literal["s3", "gcs", "azure"]

PACKAGES: dict[str, tuple[str, str]] = {
    "s3": ("s3fs", "s3"),
    "gcs": ("gcsfs", "gcs"),
    "azure": ("adlfs", "azure"),
}
"""Protocol → (module the backend needs, extra of this distribution that installs it)."""

CONTAINER_KEY: dict[str, str] = {"s3": "bucket", "gcs": "bucket", "azure": "container"}

REQUIRED: dict[str, tuple[str, ...]] = {
    "s3": ("bucket",),
    "gcs": ("bucket",),
    "azure": ("container", "account_name"),
}
OPTIONAL: dict[str, tuple[str, ...]] = {
    "s3": ("prefix", "region", "endpoint_url", "access_key_id", "secret_access_key"),
    "gcs": ("prefix", "project", "credentials_json", "endpoint_url"),
    "azure": ("prefix", "account_key", "sas_token", "connection_string", "endpoint_url"),
}
IGNORED = ("public_base_url",)
"""Keys the kernel may add to a mount's config that mean nothing to a cloud store."""

BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
CONTAINER_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")

URL_SCHEMES: dict[str, str] = {"s3": "s3", "gs": "gcs", "az": "azure"}
"""Storage URL scheme → protocol."""


def missing_package(protocol: str) -> str | None:
    """Why ``protocol`` cannot work here (its library is not installed), or ``None``."""
    module, extra = PACKAGES[protocol]
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # a module set to None in sys.modules: not importable
        spec = None
    if spec is None:
        return (
            f"the {protocol} storage backend needs the {module} package, which is not "
            f"installed: pip install 'mailproxy-ee-cloud-storage[{extra}]'"
        )
    return None


@dataclass(frozen=True)
class Target:
    """Where a backend reads and writes, and how its client is built."""

    protocol: Protocol
    container: str
    """The bucket (s3, gcs) or container (azure)."""
    prefix: str
    """``""`` or a path inside the container ending with ``/``."""
    options: Mapping[str, Any] = field(repr=False)
    """Keyword arguments of the fsspec filesystem; may hold credentials."""
    secrets: tuple[str, ...] = field(default=(), repr=False)
    """Credential values, scrubbed from any error text."""
    has_credentials: bool = False
    """Whether credentials were given (else the default chain is used)."""

    @property
    def client_key(self) -> str:
        """Identifies the client: same protocol and options → one shared client."""
        blob = json.dumps([self.protocol, dict(self.options)], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def describe(self) -> str:
        """``s3 bucket 'docs'`` (for messages; never credentials)."""
        kind = "container" if self.protocol == "azure" else "bucket"
        return f"{self.protocol} {kind} '{self.container}'"


class Problems:
    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.items: list[str] = []

    def add(self, text: str) -> None:
        self.items.append(text)

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigurationError(f"{self.protocol} storage config: " + "; ".join(self.items))


def _text(config: Mapping[str, Any], key: str, problems: Problems) -> str | None:
    value = config.get(key)
    if value is None:
        return None
    if key == "prefix" and value == "":
        return None  # the whole bucket
    if not isinstance(value, str) or not value.strip():
        problems.add(f"'{key}' must be a non-empty string")
        return None
    return value.strip()


def _endpoint(value: str | None, key: str, problems: Problems) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        problems.add(f"'{key}' must be an http:// or https:// URL")
        return None
    return value.rstrip("/")


def clean_prefix(value: str | None, problems: Problems, key: str = "prefix") -> str:
    """``a/b/`` from ``/a/b``; ``..`` and empty components refused."""
    if not value:
        return ""
    parts = [part for part in value.replace("\\", "/").split("/") if part not in ("", ".")]
    if ".." in parts or "\x00" in value:
        problems.add(f"'{key}' must not contain '..'")
        return ""
    return "/".join(parts) + "/" if parts else ""


def parse_mount(
    protocol: Protocol, config: Mapping[str, Any], settings: CloudStorageSettings
) -> Target:
    """The target of a tenant's mount config; ``ConfigurationError`` naming each problem."""
    problems = Problems(protocol)
    if not isinstance(config, Mapping):
        problems.add("must be an object")
        problems.raise_if_any()
    allowed = set(REQUIRED[protocol]) | set(OPTIONAL[protocol]) | set(IGNORED)
    for key in REQUIRED[protocol]:
        if config.get(key) is None:
            problems.add(f"missing '{key}'")
    unknown = sorted(str(key) for key in config if key not in allowed)
    for key in unknown:
        problems.add(
            f"unknown key '{key}' (accepted: "
            f"{', '.join((*REQUIRED[protocol], *OPTIONAL[protocol]))})"
        )
    keys = (*REQUIRED[protocol], *OPTIONAL[protocol])
    # credentials_json may be JSON text or an object: _gcs checks it
    values = {key: _text(config, key, problems) for key in keys if key != "credentials_json"}
    if protocol == "s3":
        target = _s3(values, problems)
    elif protocol == "gcs":
        target = _gcs(values, config.get("credentials_json"), problems)
    else:
        target = _azure(values, problems)
    problems.raise_if_any()
    if not target.has_credentials and not settings.mount_default_credentials:
        raise ConfigurationError(
            f"{protocol} storage config: credentials are required (this instance does not "
            "lend its own credentials to tenant mounts)"
        )
    return target


def parse_url(url: str, settings: CloudStorageSettings) -> Target:
    """The target of a storage URL (``s3://b/p``, ``gs://b/p``, ``az://c/p``), with the
    plugin's own credentials from its settings (else the environment's default chain)."""
    scheme, sep, rest = url.partition("://")
    protocol = URL_SCHEMES.get(scheme.lower()) if sep else None
    if protocol is None:
        raise ConfigurationError(
            f"storage URL '{url}' is not s3://<bucket>/<prefix>, gs://<bucket>/<prefix> or "
            "az://<container>/<prefix>"
        )
    problems = Problems(protocol)
    container, _, prefix = rest.partition("/")
    values: dict[str, str | None] = {CONTAINER_KEY[protocol]: container or None}
    if not container:
        problems.add(f"storage URL '{url}' names no {CONTAINER_KEY[protocol]}")
    values["prefix"] = prefix or None
    if protocol == "s3":
        s3: S3Defaults = settings.s3
        values.update(
            region=s3.region,
            endpoint_url=s3.endpoint_url,
            access_key_id=s3.access_key_id,
            secret_access_key=_secret(s3.secret_access_key),
        )
        target = _s3(values, problems)
    elif protocol == "gcs":
        gcs: GcsDefaults = settings.gcs
        values.update(project=gcs.project, endpoint_url=gcs.endpoint_url)
        target = _gcs(values, _secret(gcs.credentials_json), problems)
    else:
        azure: AzureDefaults = settings.azure
        values.update(
            account_name=azure.account_name,
            account_key=_secret(azure.account_key),
            sas_token=_secret(azure.sas_token),
            connection_string=_secret(azure.connection_string),
            endpoint_url=azure.endpoint_url,
        )
        target = _azure(values, problems, url=True)
    problems.raise_if_any()
    return target


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def _container(protocol: Protocol, value: str | None, problems: Problems) -> str:
    if value is None:
        return ""
    pattern = CONTAINER_NAME if protocol == "azure" else BUCKET_NAME
    if not pattern.match(value):
        problems.add(f"'{CONTAINER_KEY[protocol]}' '{value}' is not a valid name")
    return value


def _s3(values: Mapping[str, str | None], problems: Problems) -> Target:
    bucket = _container("s3", values.get("bucket"), problems)
    prefix = clean_prefix(values.get("prefix"), problems)
    endpoint = _endpoint(values.get("endpoint_url"), "endpoint_url", problems)
    key, secret = values.get("access_key_id"), values.get("secret_access_key")
    if (key is None) != (secret is None):
        problems.add("give both 'access_key_id' and 'secret_access_key', or neither")
    client_kwargs: dict[str, Any] = {}
    if values.get("region"):
        client_kwargs["region_name"] = values["region"]
    options: dict[str, Any] = {"client_kwargs": client_kwargs}
    if endpoint:
        options["endpoint_url"] = endpoint
    if key and secret:
        options.update(key=key, secret=secret)
    return Target(
        "s3",
        bucket,
        prefix,
        options,
        secrets=tuple(filter(None, (secret,))),
        has_credentials=bool(key and secret),
    )


def _gcs(values: Mapping[str, str | None], credentials: Any, problems: Problems) -> Target:
    bucket = _container("gcs", values.get("bucket"), problems)
    prefix = clean_prefix(values.get("prefix"), problems)
    endpoint = _endpoint(values.get("endpoint_url"), "endpoint_url", problems)
    options: dict[str, Any] = {}
    secrets: tuple[str, ...] = ()
    info: Mapping[str, Any] | None = None
    if isinstance(credentials, str) and credentials.strip():
        try:
            parsed = json.loads(credentials)
        except ValueError:
            problems.add("'credentials_json' is not valid JSON")
            parsed = None
        info = parsed if isinstance(parsed, Mapping) else None
        if parsed is not None and info is None:
            problems.add("'credentials_json' must be a JSON object")
    elif isinstance(credentials, Mapping):
        info = credentials
    elif credentials is not None:
        problems.add("'credentials_json' must be a service account key (JSON text or object)")
    if info is not None:
        if info.get("type") == "service_account":
            for needed in ("client_email", "private_key", "token_uri"):
                if not isinstance(info.get(needed), str) or not info.get(needed):
                    problems.add(f"'credentials_json' lacks '{needed}'")
        elif info.get("type") not in ("authorized_user", "external_account"):
            problems.add(
                "'credentials_json' must be a service account key, authorized user or "
                "external account credentials (its 'type')"
            )
        options["token"] = dict(info)
        secrets = tuple(
            str(info[name])
            for name in ("private_key", "client_secret", "refresh_token")
            if isinstance(info.get(name), str)
        )
    elif endpoint:
        options["token"] = "anon"  # an emulator or private endpoint without a key
    else:
        options["token"] = "google_default"
    if values.get("project"):
        options["project"] = values["project"]
    if endpoint:
        options["endpoint_url"] = endpoint
    return Target("gcs", bucket, prefix, options, secrets=secrets, has_credentials=info is not None)


def _azure(values: Mapping[str, str | None], problems: Problems, *, url: bool = False) -> Target:
    container = _container("azure", values.get("container"), problems)
    prefix = clean_prefix(values.get("prefix"), problems)
    endpoint = _endpoint(values.get("endpoint_url"), "endpoint_url", problems)
    account = values.get("account_name")
    key, sas, connection = (
        values.get("account_key"),
        values.get("sas_token"),
        values.get("connection_string"),
    )
    given = [
        name
        for name, value in (
            ("account_key", key),
            ("sas_token", sas),
            ("connection_string", connection),
        )
        if value
    ]
    if len(given) > 1:
        problems.add(f"give only one of {', '.join(given)}")
    options: dict[str, Any] = {}
    if connection:
        fields = _connection_fields(connection)
        if not fields.get("accountname") and not fields.get("blobendpoint"):
            problems.add("'connection_string' names no AccountName or BlobEndpoint")
        named = fields.get("accountname")
        if account and named and named != account:
            problems.add(f"'connection_string' is for account '{named}', not '{account}'")
        if endpoint and "blobendpoint" not in fields:
            connection = f"{connection.rstrip(';')};BlobEndpoint={endpoint}"
        options["connection_string"] = connection
        options["account_name"] = account or named
    elif key or sas:
        if not account:
            problems.add("missing 'account_name'")
        blob_endpoint = endpoint or f"https://{account}.blob.core.windows.net"
        if key:
            scheme = urlsplit(blob_endpoint).scheme or "https"
            options["connection_string"] = (
                f"DefaultEndpointsProtocol={scheme};AccountName={account};AccountKey={key};"
                f"BlobEndpoint={blob_endpoint}"
            )
        else:
            options["connection_string"] = (
                f"BlobEndpoint={blob_endpoint};SharedAccessSignature={str(sas).lstrip('?')}"
            )
        options["account_name"] = account
    else:
        if not account and not url:
            problems.add("missing 'account_name'")
        if endpoint:
            parts = urlsplit(endpoint)
            if parts.scheme != "https":
                problems.add(
                    "an http:// 'endpoint_url' needs 'account_key', 'sas_token' or "
                    "'connection_string' (default credentials are sent over https only)"
                )
            options["account_host"] = f"{parts.netloc}{parts.path}"
        if account:
            options["account_name"] = account
        # an az:// URL without an account: adlfs reads AZURE_STORAGE_CONNECTION_STRING or
        # AZURE_STORAGE_ACCOUNT_NAME when the client is built
    return Target(
        "azure",
        container,
        prefix,
        options,
        secrets=tuple(filter(None, (key, sas, connection))),
        has_credentials=bool(given),
    )


def _connection_fields(connection: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in connection.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return fields


def account_key_of(target: Target) -> str | None:
    """The shared key of an azure target (what signs SAS links), if it has one."""
    connection = target.options.get("connection_string")
    if isinstance(connection, str):
        return _connection_fields(connection).get("accountkey") or None
    return None
