"""Service settings: an optional TOML file overlaid by ``MAILPROXY_*`` environment variables.

This is the only module of the project that reads ``os.environ``. Sources, from
weakest to strongest:

1. field defaults (safe to run: SQLite next to the working directory, listening on 127.0.0.1);
2. the TOML file given to :func:`load_settings` (``--config``), or named by ``MAILPROXY_CONFIG``;
3. environment variables ``MAILPROXY_<FIELD>`` (``GMP_DB_PATH`` and ``GMP_API_TOKEN`` are accepted
   as aliases of ``MAILPROXY_DB`` and ``MAILPROXY_API_TOKEN``; the ``MAILPROXY_`` name wins when
   both are set). An empty variable counts as unset;
4. programmatic overrides (CLI flags such as ``--port``, tests).

Formats. In the environment, ``retry_delays``, ``plugins``, ``disabled_plugins`` and
``required_plugins`` are comma-separated, ``attachment_roots`` is separated by ``os.pathsep``
(``:`` on POSIX; a single path is fine; not JSON) and booleans are ``1``/``0``/``true``/``false``.
In TOML they are arrays (a string in the environment format is accepted too).

Plugin settings live in ``[plugins.<name>]`` tables and in ``MAILPROXY_<NAME>__<FIELD>`` variables
(double underscore; the name is lower-cased; further ``__`` reach nested tables). Because TOML
cannot hold both ``plugins = [...]`` and ``[plugins.<name>]`` tables, the allow-list may also be
written ``enabled = [...]`` inside the ``[plugins]`` table. Sections are kept raw in
:attr:`Settings.plugin_sections` and validated by :meth:`Settings.plugin_settings` against the
model the plugin registered.

Paths. A relative ``db`` path (plain or ``sqlite:///relative.db``), ``encryption_key_file`` and
each ``attachment_roots`` entry are made absolute against the current working directory when the
settings are loaded (``~`` is expanded): the database then stays where the operator started the
service even if the process changes directory later, and logs and ``mail-proxy`` output show the
real location. Attachment roots are also resolved through symlinks, so containment checks compare
real paths. ``:memory:`` and non-SQLite URLs are kept as written.

Every bad value raises :class:`~mailproxy_core.errors.ConfigurationError` naming the setting as the
user wrote it (``MAILPROXY_PORT``, ``port in /etc/mp.toml``, ``MAILPROXY_SMTP__POOL_SIZE``) and the
accepted values. Secret values are never echoed.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
import tomllib
import types
from collections import abc
from collections.abc import Iterator, Mapping
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin
from urllib.parse import urlsplit, urlunsplit

import annotated_types
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretBytes,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from .crypto import MASK, is_secret_key, mask_secrets
from .errors import ConfigurationError

__all__ = ["ENV_PREFIX", "LOG_LEVELS", "Settings", "load_settings"]

ENV_PREFIX = "MAILPROXY_"
CONFIG_ENV = "MAILPROXY_CONFIG"
ENV_ALIASES: Mapping[str, str] = {"GMP_DB_PATH": "db", "GMP_API_TOKEN": "api_token"}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DB_SCHEMES = ("sqlite", "sqlite+aiosqlite", "postgresql", "postgres", "postgresql+asyncpg")
_PLUGIN_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_LIST_SEPARATOR = ","

ModelT = TypeVar("ModelT", bound=BaseModel)


def _accepts(text: str) -> dict[str, Any]:
    """``json_schema_extra`` carrying the human description of a field's accepted values."""
    return {"accepts": text}


class Settings(BaseModel):
    """The validated, immutable configuration of one mail-proxy process.

    Build it with :func:`load_settings` (file + environment) or :meth:`from_values` (tests).
    Secrets are ``SecretStr``: read them with ``get_secret_value()``; ``repr()`` and
    :meth:`redacted` never show them. ``plugin_sections`` holds raw plugin settings; treat it as
    read-only and read a plugin's settings through :meth:`plugin_settings`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    db: str = Field(
        "./mailproxy.db",
        description="SQLite path (or sqlite:///path) or postgresql:// URL",
        json_schema_extra=_accepts(
            "a SQLite file path, a sqlite:///path URL or a postgresql://user:password@host/db URL"
        ),
    )
    api_token: SecretStr | None = Field(
        None,
        min_length=1,
        description="admin token; generated on first start when unset",
        json_schema_extra=_accepts("a non-empty token"),
    )
    encryption_key: SecretStr | None = Field(
        None,
        description="base64 of 32 bytes; encrypts stored secrets",
        json_schema_extra=_accepts("the base64 encoding of exactly 32 random bytes"),
    )
    encryption_key_file: Path | None = Field(
        None, description="file containing the base64 encryption key"
    )
    host: str = Field("127.0.0.1", min_length=1, description="listen address")
    port: int = Field(8000, ge=1, le=65535, description="listen port")
    send_loop_interval: float = Field(0.5, gt=0, description="seconds between idle queue polls")
    max_retries: int = Field(5, ge=0, description="retries after the first attempt")
    retry_delays: tuple[Annotated[float, Field(gt=0)], ...] = Field(
        (60.0, 300.0, 900.0, 3600.0, 7200.0),
        min_length=1,
        description="seconds to wait before retry k (the last repeats)",
        json_schema_extra=_accepts(
            "one or more positive numbers of seconds, comma-separated in the environment "
            "(e.g. 60,300,900,3600,7200)"
        ),
    )
    report_interval: float = Field(
        300.0, gt=0, description="seconds between idle report polls; first back-off step"
    )
    report_retention_seconds: int = Field(
        604800, ge=0, description="keep finished, fully reported messages this long"
    )
    attachment_roots: tuple[Path, ...] = Field(
        (),
        description="directories fetch_mode=filesystem may read; empty = filesystem fetch off",
        json_schema_extra=_accepts(
            f"directory paths, separated by {os.pathsep!r} in the environment (not JSON)"
        ),
    )
    plugins: tuple[str, ...] | None = Field(
        None,
        description="allow-list of plugin names; unset = all installed plugins",
        json_schema_extra=_accepts("plugin names, comma-separated in the environment"),
    )
    disabled_plugins: tuple[str, ...] = Field(
        (),
        description="plugin names never loaded",
        json_schema_extra=_accepts("plugin names, comma-separated in the environment"),
    )
    required_plugins: tuple[str, ...] = Field(
        (),
        description="plugin names whose failure to load stops startup",
        json_schema_extra=_accepts("plugin names, comma-separated in the environment"),
    )
    test_mode: bool = Field(
        False,
        description="dispatcher, reporter and receipt handlers run only on instance/run_now",
        json_schema_extra=_accepts("1/0 or true/false"),
    )
    drain_timeout: float = Field(
        5.0, ge=0, description="seconds in-flight sends may take to finish on shutdown"
    )
    max_batch_messages: int = Field(1000, ge=1, description="most messages in one add_batch call")
    max_recipients: int = Field(
        1000,
        ge=1,
        description="most recipients (to + cc + bcc) of one message; more is rejected at submit",
    )
    max_request_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1024,
        description="largest request body accepted, in bytes; larger bodies get 413",
    )
    max_concurrency: int = Field(10, ge=1, description="in-flight sends per process")
    max_per_account: int = Field(3, ge=1, description="in-flight sends per account")
    batch_size: int = Field(50, ge=1, description="messages claimed per dispatcher round")
    lease_seconds: float = Field(60.0, gt=0, description="claim lease; expired leases are retried")
    heartbeat_seconds: float = Field(
        5.0,
        gt=0,
        description="seconds between dispatcher heartbeats; 3 missed ones and its leases are "
        "taken over",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="root log level"
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="log lines as text, or one JSON object per line (log shippers)"
    )
    access_log: bool = Field(
        True,
        description="log one line per API request (method, path, status, duration, caller)",
        json_schema_extra=_accepts("1/0 or true/false"),
    )
    plugin_sections: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="raw [plugins.<name>] / MAILPROXY_<NAME>__* settings"
    )

    # where each value came from, as the user wrote it ("MAILPROXY_PORT", "port in /etc/mp.toml")
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_values(cls, **values: Any) -> Settings:
        """Build settings from keyword values only (no file, no environment); for tests.

        Raises:
            ConfigurationError: a value is invalid; the message names the field.
        """
        return _validate(dict(values), {name: name for name in values})

    def source_of(self, name: str) -> str:
        """How the user wrote setting ``name`` (a field, or ``plugins.<plugin>.<field>``).

        Falls back to the environment variable name for values left at their default, so error
        messages of other modules can tell the operator what to change.
        """
        if name in self._sources:
            return self._sources[name]
        return _default_label(name)

    def plugin_settings(self, name: str, model: type[ModelT]) -> ModelT:
        """Validate plugin ``name``'s section (TOML merged with environment) against ``model``.

        Environment strings are split for list-typed fields (comma-separated, or a JSON array)
        and JSON-decoded for mapping-typed fields; scalars are converted by pydantic.

        Raises:
            ConfigurationError: an unknown key, or a value the model rejects; the message names
                the setting as the user wrote it and the accepted values.
        """
        raw = copy.deepcopy(self.plugin_sections.get(name, {}))
        data = {key: _coerce_for_field(model.model_fields.get(key), v) for key, v in raw.items()}
        prefix = f"plugins.{name}"
        problems = _unknown_plugin_keys(model, data, prefix, self._sources)
        try:
            validated = model.model_validate(data)
        except ValidationError as exc:
            problems += _describe_errors(exc, model, prefix, self._sources)
        if problems:
            raise _configuration_error(problems)
        return validated

    def redacted(self) -> dict[str, Any]:
        """All settings as JSON-compatible values for display, with every secret replaced.

        Secret fields show ``"***"`` when set (``None`` when not), a password in the database URL
        is masked, and plugin values under secret-looking keys are masked.
        """
        shown: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                shown[name] = MASK
            elif name == "db":
                shown[name] = _mask_url(value)
            elif name == "plugin_sections":
                shown[name] = mask_secrets(value)
            elif isinstance(value, Path):
                shown[name] = str(value)
            elif isinstance(value, tuple):
                shown[name] = [str(item) if isinstance(item, Path) else item for item in value]
            else:
                shown[name] = value
        return shown

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # plugin sections and the database URL may hold plaintext credentials
        for name, value in super().__repr_args__():
            if name == "plugin_sections":
                yield name, mask_secrets(value)
            elif name == "db":
                yield name, _mask_url(value)
            else:
                yield name, value

    # -- validators -----------------------------------------------------------------------

    @field_validator("db", mode="after")
    @classmethod
    def _normalize_db(cls, value: str) -> str:
        return _normalize_db(value)

    @field_validator(
        "retry_delays", "plugins", "disabled_plugins", "required_plugins", mode="before"
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(_LIST_SEPARATOR) if item.strip())
        return value

    @field_validator("plugins", "disabled_plugins", "required_plugins", mode="after")
    @classmethod
    def _check_plugin_names(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for name in value or ():
            if not _PLUGIN_NAME.match(name):
                raise ValueError(f"{name!r} is not a plugin name (letters, digits, _ - .)")
        return value

    @field_validator("attachment_roots", mode="before")
    @classmethod
    def _split_paths(cls, value: Any) -> Any:
        if isinstance(value, str | os.PathLike):
            text = os.fspath(value)
            return tuple(item.strip() for item in text.split(os.pathsep) if item.strip())
        return value

    @field_validator("attachment_roots", mode="after")
    @classmethod
    def _resolve_roots(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        return tuple(root.expanduser().resolve() for root in value)

    @field_validator("encryption_key_file", mode="after")
    @classmethod
    def _absolute_key_file(cls, value: Path | None) -> Path | None:
        return None if value is None else _absolute(os.fspath(value))

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_consistency(self, info: ValidationInfo) -> Settings:
        sources = info.context.get("sources", {}) if isinstance(info.context, dict) else {}
        self._sources = dict(sources)
        if self.encryption_key is not None and self.encryption_key_file is not None:
            raise ValueError(
                f"{self.source_of('encryption_key')} and {self.source_of('encryption_key_file')} "
                "are both set: set only one of them"
            )
        clash = sorted(set(self.required_plugins) & set(self.disabled_plugins))
        if clash:
            raise ValueError(
                f"{self.source_of('required_plugins')} and {self.source_of('disabled_plugins')} "
                f"both list {', '.join(clash)}: a required plugin cannot be disabled"
            )
        if self.plugins is not None:
            missing = sorted(set(self.required_plugins) - set(self.plugins))
            if missing:
                raise ValueError(
                    f"{self.source_of('required_plugins')} lists {', '.join(missing)}, which "
                    f"{self.source_of('plugins')} does not allow: add them to the allow-list"
                )
        return self


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Load settings from ``config_path`` (TOML), then ``environ``, then ``overrides``.

    Args:
        config_path: optional TOML file; when None, ``MAILPROXY_CONFIG`` from ``environ`` is used
            if set.
        environ: environment to read; defaults to ``os.environ``. Unknown ``MAILPROXY_*``
            variables are ignored (other tools use some, e.g. ``MAILPROXY_TEST_PG_URL``).
        overrides: field values that win over everything (CLI flags, tests). ``None`` means "not
            given" and is skipped, so CLI options can be passed straight through.

    Returns:
        The validated, frozen :class:`Settings`.

    Raises:
        ConfigurationError: missing or unparseable config file, unknown key in it, or an invalid
            value; the message names the setting as written and the accepted values.
        TypeError: an override that is not a settings field (a programming error).
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    sections: dict[str, dict[str, Any]] = {}
    if config_path is None and env.get(CONFIG_ENV, "").strip():
        config_path = env[CONFIG_ENV].strip()
    if config_path is not None:
        _apply_toml(Path(config_path), values, sources, sections)
    _apply_environ(env, values, sources, sections)
    for name, value in overrides.items():
        if name not in Settings.model_fields:
            raise TypeError(f"load_settings() got an unknown setting {name!r}")
        if value is None:
            continue
        if name == "plugin_sections":
            for plugin, section in value.items():
                _merge(sections.setdefault(plugin, {}), section)
                for key in section:
                    sources[f"plugins.{plugin}.{key}"] = f"plugin_sections[{plugin!r}][{key!r}]"
        else:
            values[name] = value
            sources[name] = f"{name} (set by the caller)"
    values["plugin_sections"] = sections
    return _validate(values, sources)


# -- sources ------------------------------------------------------------------------------


def _apply_toml(
    path: Path,
    values: dict[str, Any],
    sources: dict[str, str],
    sections: dict[str, dict[str, Any]],
) -> None:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigurationError(
            f"Configuration file {path} not found: check --config / {CONFIG_ENV}."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"Configuration file {path} is not valid TOML: {exc}.") from None
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot read configuration file {path}: {exc.strerror or exc}."
        ) from None
    known = [name for name in Settings.model_fields if name != "plugin_sections"]
    problems: list[str] = []
    for key, value in data.items():
        if key == "plugins" and isinstance(value, dict):
            for plugin, section in value.items():
                if isinstance(section, dict):
                    _merge(sections.setdefault(plugin, {}), section)
                    for label_key in _leaf_keys(section, f"plugins.{plugin}"):
                        sources[label_key] = f"{label_key} in {path}"
                elif plugin == "enabled":
                    values["plugins"] = section
                    sources["plugins"] = f"plugins.enabled in {path}"
                else:
                    problems.append(
                        f"Unknown setting plugins.{plugin} in {path}: expected a "
                        f"[plugins.{plugin}] table of plugin settings, or "
                        "plugins.enabled = [plugin names]."
                    )
        elif key in known:
            values[key] = value
            sources[key] = f"{key} in {path}"
        else:
            hint = difflib.get_close_matches(key, known, n=1)
            suggestion = f" (did you mean {hint[0]}?)" if hint else ""
            problems.append(
                f"Unknown setting {key} in {path}{suggestion}: expected one of "
                f"{', '.join(known)}, or a [plugins.<name>] table."
            )
    if problems:
        raise _configuration_error(problems)


def _apply_environ(
    env: Mapping[str, str],
    values: dict[str, Any],
    sources: dict[str, str],
    sections: dict[str, dict[str, Any]],
) -> None:
    fields = {name for name in Settings.model_fields if name != "plugin_sections"}
    found: list[tuple[int, str, str, str]] = []
    for var, raw in env.items():
        value = raw.strip()
        upper = var.upper()
        if not value:
            continue
        if upper in ENV_ALIASES:
            found.append((0, ENV_ALIASES[upper], var, value))
        elif upper.startswith(ENV_PREFIX) and upper != CONFIG_ENV:
            found.append((1, upper[len(ENV_PREFIX) :].lower(), var, value))
    # aliases first, so that the MAILPROXY_ name wins when both are set
    for _rank, name, var, value in sorted(found):
        if "__" in name:
            path = name.split("__")
            if all(path):
                _set_nested(sections.setdefault(path[0], {}), path[1:], value)
                sources[".".join(["plugins", *path])] = var
        elif name in fields:
            values[name] = value
            sources[name] = var


def _validate(values: dict[str, Any], sources: dict[str, str]) -> Settings:
    try:
        return Settings.model_validate(values, context={"sources": sources})
    except ValidationError as exc:
        raise _configuration_error(_describe_errors(exc, Settings, "", sources)) from None


def _merge(target: dict[str, Any], source: Mapping[str, Any]) -> None:
    for key, value in source.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(dict(value)) if isinstance(value, Mapping) else value


def _set_nested(target: dict[str, Any], path: list[str], value: str) -> None:
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[path[-1]] = value


def _leaf_keys(section: Mapping[str, Any], prefix: str) -> Iterator[str]:
    for key, value in section.items():
        yield f"{prefix}.{key}"
        if isinstance(value, Mapping):
            yield from _leaf_keys(value, f"{prefix}.{key}")


# -- values -------------------------------------------------------------------------------


def _absolute(text: str) -> Path:
    return Path(os.path.abspath(Path(text).expanduser()))


def _normalize_db(value: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError("the database location is empty")
    if "://" not in text:
        return text if text == ":memory:" else str(_absolute(text))
    scheme, _, rest = text.partition("://")
    if scheme.lower() not in DB_SCHEMES:
        raise ValueError(f"unsupported database URL scheme {scheme!r}")
    if not scheme.lower().startswith("sqlite") or not rest:
        return text
    if not rest.startswith("/"):
        raise ValueError("a SQLite URL needs three slashes: sqlite:///path/to/file.db")
    path, query_mark, query = rest[1:].partition("?")
    if path and path != ":memory:":
        path = str(_absolute(path))
    return f"{scheme}:///{path}{query_mark}{query}"


def _mask_url(value: str) -> str:
    """Replace the password of a database URL with ``***`` (IPv6 hosts and ports kept)."""
    if "://" not in value:
        return value
    parts = urlsplit(value)
    if parts.password is None:
        return value
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{hostport}"))


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The annotation without ``Optional``/``Annotated``, and whether None is allowed."""
    optional = False
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [arg for arg in get_args(annotation) if arg is not type(None)]
            optional = optional or len(args) < len(get_args(annotation))
            if len(args) != 1:
                return annotation, optional
            annotation = args[0]
        else:
            return annotation, optional


_SEQUENCE_ORIGINS = (list, tuple, set, frozenset)
_ABSTRACT_SEQUENCES = (abc.Sequence, abc.MutableSequence, abc.Set, abc.MutableSet)


def _is_sequence(annotation: Any) -> bool:
    """True for list-like annotations (``list[str]``, ``tuple[int, ...]``, ``Sequence[str]``)."""
    origin = get_origin(annotation) or annotation
    if origin in _ABSTRACT_SEQUENCES:
        return True
    return isinstance(origin, type) and issubclass(origin, _SEQUENCE_ORIGINS)


def _is_table(annotation: Any) -> bool:
    """True for mapping or nested-model annotations (given as JSON objects in the environment)."""
    origin = get_origin(annotation) or annotation
    return isinstance(origin, type) and issubclass(origin, dict | abc.Mapping | BaseModel)


def _coerce_for_field(field: FieldInfo | None, value: Any) -> Any:
    """Turn an environment string into a list or mapping when the plugin field wants one."""
    if field is None or not isinstance(value, str):
        return value
    base, _ = _unwrap(field.annotation)
    is_sequence = _is_sequence(base)
    if _is_table(base) or (is_sequence and value.lstrip().startswith("[")):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if is_sequence:
        return [item.strip() for item in value.split(_LIST_SEPARATOR) if item.strip()]
    return value


def _unknown_plugin_keys(
    model: type[BaseModel], data: Mapping[str, Any], prefix: str, sources: Mapping[str, str]
) -> list[str]:
    if model.model_config.get("extra") == "allow":
        return []
    accepted = set(model.model_fields)
    for field in model.model_fields.values():
        if isinstance(field.alias, str):
            accepted.add(field.alias)
        if isinstance(field.validation_alias, str):
            accepted.add(field.validation_alias)
    known = ", ".join(sorted(model.model_fields)) or "(none)"
    return [
        f"Unknown setting {sources.get(f'{prefix}.{key}', key)}: "
        f"{prefix.removeprefix('plugins.')} accepts {known}."
        for key in data
        if key not in accepted
    ]


# -- error messages -----------------------------------------------------------------------


def _default_label(name: str) -> str:
    if name.startswith("plugins."):
        _, plugin, *rest = name.split(".")
        return f"{ENV_PREFIX}{plugin.upper()}__{'__'.join(rest).upper()}"
    return f"{ENV_PREFIX}{name.upper()}"


def _label(loc: tuple[str | int, ...], prefix: str, sources: Mapping[str, str]) -> str:
    keys = [str(part) for part in loc]
    base = [prefix] if prefix else []
    for end in range(len(keys), 0, -1):
        dotted = ".".join([*base, *keys[:end]])
        if dotted in sources:
            return sources[dotted]
    field_path = [*base, *(part for part in loc if isinstance(part, str))]
    dotted = ".".join(field_path)
    if prefix:
        plugin = prefix.removeprefix("plugins.")
        keys_only = ".".join(str(part) for part in loc if isinstance(part, str))
        return f"{_default_label(dotted)} (or {keys_only} in [plugins.{plugin}])"
    return _default_label(dotted)


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _expected(field: FieldInfo) -> str | None:
    """Describe the values a field accepts, e.g. "an integer between 1 and 65535"."""
    extra = field.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("accepts"), str):
        return str(extra["accepts"])
    base, optional = _unwrap(field.annotation)
    origin = get_origin(base)
    if origin is Literal:
        text = "one of " + ", ".join(str(arg) for arg in get_args(base))
    elif isinstance(base, type) and issubclass(base, Enum):
        text = "one of " + ", ".join(str(member.value) for member in base)
    elif base is bool:
        text = "true or false (1/0)"
    elif base is int:
        text = "an integer"
    elif base is float:
        text = "a number"
    elif base in (str, SecretStr, SecretBytes):
        text = "a string"
    elif isinstance(base, type) and issubclass(base, os.PathLike):
        text = "a path"
    elif _is_sequence(base):
        text = "a list (comma-separated in the environment)"
    elif _is_table(base):
        text = "a table of settings"
    else:
        return None
    low: Any = None
    high: Any = None
    low_word = high_word = ""
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            low, low_word = item.ge, "of at least"
        elif isinstance(item, annotated_types.Gt):
            low, low_word = item.gt, "greater than"
        elif isinstance(item, annotated_types.Le):
            high, high_word = item.le, "of at most"
        elif isinstance(item, annotated_types.Lt):
            high, high_word = item.lt, "less than"
        elif isinstance(item, annotated_types.MinLen) and item.min_length > 0:
            text = text.replace("a string", "a non-empty string")
    if low_word == "of at least" and high_word == "of at most":
        text += f" between {_number(low)} and {_number(high)}"
    else:
        bounds = [f"{w} {_number(b)}" for w, b in ((low_word, low), (high_word, high)) if w]
        if bounds:
            text += " " + " and ".join(bounds)
    return text + (" (or leave unset)" if optional else "")


def _describe_errors(
    exc: ValidationError, model: type[BaseModel], prefix: str, sources: Mapping[str, str]
) -> list[str]:
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if not loc:
            problems.append(message[:1].upper() + message[1:] + ".")
            continue
        field = model.model_fields.get(str(loc[0]))
        nested = any(isinstance(part, str) for part in loc[1:])
        expected = _expected(field) if field is not None and not nested else None
        label = _label(loc, prefix, sources)
        secret = any(isinstance(p, str) and is_secret_key(p) for p in loc) or (
            field is not None and _unwrap(field.annotation)[0] in (SecretStr, SecretBytes)
        )
        if error["type"] == "missing":
            detail = f"{label} is required"
        elif error["type"] == "value_error":
            detail = f"Invalid setting {label}: {message}"
        elif secret:
            detail = f"Invalid setting {label}"
        else:
            detail = f"Invalid setting {label}: got {error['input']!r}"
        problems.append(f"{detail}; expected {expected or message[:1].lower() + message[1:]}.")
    return problems


def _configuration_error(problems: list[str]) -> ConfigurationError:
    if len(problems) == 1:
        return ConfigurationError(problems[0])
    return ConfigurationError("Invalid configuration:\n" + "\n".join(f"- {p}" for p in problems))
