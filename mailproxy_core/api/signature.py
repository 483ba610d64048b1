"""Read an endpoint method's signature: parameters, their docs, and the pydantic request model.

One signature feeds three consumers (docs/api.md): the HTTP route validates requests with the model
built here, the OpenAPI document shows that model's JSON schema, and the CLI turns the same
parameters into arguments and options. Keeping the translation in one module keeps them in step.

Parameter descriptions come from a Google-style ``Args:`` section of the method's docstring.
"""

from __future__ import annotations

import enum
import inspect
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model
from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError

from ..errors import PluginError

_SCALAR_TYPES: tuple[type, ...] = (str, int, float, bool)
_ARGS_HEADERS = frozenset({"args:", "arguments:", "parameters:", "params:"})
_ARG_LINE = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


@dataclass(frozen=True, slots=True)
class ParamInfo:
    """One parameter of an endpoint method, as the route, the CLI and OpenAPI see it.

    ``annotation`` is the resolved type; ``default`` is meaningful only when ``required`` is
    false. ``description`` comes from the docstring's ``Args:`` section ("" when absent).
    """

    name: str
    annotation: Any
    required: bool
    default: Any = None
    description: str = ""


def unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """Strip ``Annotated`` and ``| None`` from a type.

    Returns ``(inner, nullable)``; a union of several non-None types is returned whole.
    """
    origin = get_origin(annotation)
    if origin is Annotated:
        return unwrap_optional(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        members = get_args(annotation)
        kept = [member for member in members if member is not type(None)]
        nullable = len(kept) != len(members)
        if len(kept) == 1:
            inner, inner_nullable = unwrap_optional(kept[0])
            return inner, nullable or inner_nullable
        return Union[tuple(kept)], nullable  # noqa: UP007 - built from a runtime tuple
    return annotation, False


def literal_values(annotation: Any) -> tuple[Any, ...] | None:
    """The allowed values of a ``Literal`` or ``Enum`` type (unwrapped), else ``None``."""
    inner, _ = unwrap_optional(annotation)
    if get_origin(inner) is Literal:
        return get_args(inner)
    if isinstance(inner, type) and issubclass(inner, enum.Enum):
        return tuple(member.value for member in inner)
    return None


def is_scalar(annotation: Any) -> bool:
    """Whether a value of this type travels as one plain string (query string, CLI argument).

    Scalars are ``str``, ``int``, ``float``, ``bool``, ``Any``, literals, enums and unions of
    those; everything else (lists, dicts, models) travels as JSON.
    """
    inner, _ = unwrap_optional(annotation)
    if inner is Any or inner in _SCALAR_TYPES:
        return True
    values = literal_values(inner)
    if values is not None:
        return all(isinstance(value, _SCALAR_TYPES) for value in values)
    if get_origin(inner) is Union:
        return all(is_scalar(member) for member in get_args(inner))
    return False


def is_scalar_list(annotation: Any) -> bool:
    """Whether the type is a list (or tuple/set) of scalars, e.g. ``list[str] | None``."""
    inner, _ = unwrap_optional(annotation)
    if get_origin(inner) not in (list, tuple, set, frozenset):
        return False
    args = [arg for arg in get_args(inner) if arg is not Ellipsis]
    return len(args) == 1 and is_scalar(args[0])


def split_docstring(docstring: str) -> tuple[str, str]:
    """Split a docstring into its summary (first line) and the rest (description)."""
    lines = inspect.cleandoc(docstring).splitlines() if docstring else []
    if not lines:
        return "", ""
    return lines[0].strip(), "\n".join(lines[1:]).strip()


def without_args_section(text: str) -> str:
    """``text`` without its ``Args:`` section (parameters are documented in the schema)."""
    kept: list[str] = []
    section_indent: int | None = None
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        if section_indent is not None:
            if not line.strip() or indent > section_indent:
                continue
            section_indent = None
        if line.strip().lower() in _ARGS_HEADERS:
            section_indent = indent
            continue
        kept.append(line)
    return "\n".join(kept).strip()


def param_docs(docstring: str) -> dict[str, str]:
    """Parameter descriptions from a Google-style ``Args:`` section.

    Example: ``Args:\\n    tenant_id: the tenant.`` → ``{"tenant_id": "the tenant."}``;
    indented continuation lines are joined with a space.
    """
    docs: dict[str, str] = {}
    lines = inspect.cleandoc(docstring).splitlines() if docstring else []
    section_indent: int | None = None
    entry_indent: int | None = None
    current: str | None = None
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if section_indent is None:
            if stripped.lower() in _ARGS_HEADERS:
                section_indent = indent
            continue
        if not stripped:
            continue
        if indent <= section_indent:
            break
        if entry_indent is None:
            entry_indent = indent
        match = _ARG_LINE.match(stripped)
        if indent == entry_indent and match:
            current = match.group(1).lstrip("*")
            docs[current] = match.group(2).strip()
        elif current is not None:
            docs[current] = f"{docs[current]} {stripped}".strip()
    return docs


def read_params(
    func: Callable[..., Any],
    hints: Mapping[str, Any],
    where: str,
) -> tuple[tuple[ParamInfo, ...], bool]:
    """The parameters of ``func`` (without ``self``) and whether it takes ``**kwargs``.

    Args:
        func: the endpoint method.
        hints: its resolved type hints (``typing.get_type_hints``).
        where: ``entity.method``, used in error messages.

    Raises:
        PluginError: a ``*args`` parameter, a parameter without a type hint, or a name starting
            with ``_`` (which pydantic cannot use as a field).
    """
    docs = param_docs(inspect.getdoc(func) or "")
    params: list[ParamInfo] = []
    accepts_extra = False
    for index, parameter in enumerate(inspect.signature(func).parameters.values()):
        if index == 0:
            continue  # self
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            accepts_extra = True
            continue
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            raise PluginError(
                f"endpoint method {where}: parameter {parameter.name!r} must be passable by "
                "keyword (no *args, no positional-only parameters)"
            )
        if parameter.name.startswith("_"):
            raise PluginError(
                f"endpoint method {where}: parameter {parameter.name!r} starts with '_'; "
                "API parameter names must be public"
            )
        if parameter.name not in hints:
            raise PluginError(
                f"endpoint method {where}: parameter {parameter.name!r} has no type hint; "
                "every parameter needs one (it becomes the request schema)"
            )
        required = parameter.default is inspect.Parameter.empty
        params.append(
            ParamInfo(
                name=parameter.name,
                annotation=hints[parameter.name],
                required=required,
                default=None if required else parameter.default,
                description=docs.get(parameter.name, ""),
            )
        )
    return tuple(params), accepts_extra


def _not_a_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


_NUMBERS = (int, float)


def numbers_refuse_booleans(annotation: Any) -> Any:
    """``annotation`` with ``true``/``false`` refused where it declares ``int`` or ``float``.

    pydantic's lax mode reads ``true`` as 1 for an integer field; the OpenAPI document says
    ``integer``, so a boolean is a client's mistake (422). Strings of digits in query strings
    are still accepted.
    """
    inner, _ = unwrap_optional(annotation)
    if inner not in _NUMBERS:
        return annotation
    # wraps the whole annotation, so its own constraints (Field(ge=1) ...) are kept
    return Annotated[annotation, BeforeValidator(_not_a_boolean)]


def build_request_model(
    model_name: str,
    params: tuple[ParamInfo, ...],
    *,
    accepts_extra: bool,
    relaxed: frozenset[str] = frozenset(),
    notes: Mapping[str, str] | None = None,
    where: str,
) -> type[BaseModel]:
    """Build the pydantic model that validates one method's request.

    Unknown fields are rejected (``extra="forbid"``) unless the method takes ``**kwargs``.
    A parameter whose name shadows a ``BaseModel`` attribute (``json``, ``schema`` ...) gets a
    private field name and keeps its name as the alias, so clients never see the difference;
    read values back with :func:`model_values`.

    Args:
        model_name: the model's (and the OpenAPI component's) name.
        params: the method's parameters.
        accepts_extra: whether the method takes ``**kwargs``.
        relaxed: parameters made optional (``None`` default) at the HTTP layer, e.g. the
            ``tenant_id`` of tenant-scoped methods, which the route fills in.
        notes: text appended to a parameter's description in the schema.
        where: ``entity.method``, used in error messages.

    Raises:
        PluginError: a parameter type pydantic cannot validate.
    """
    fields: dict[str, Any] = {}
    for param in params:
        description = " ".join(
            part for part in (param.description, (notes or {}).get(param.name, "")) if part
        )
        annotation = numbers_refuse_booleans(param.annotation)
        if param.name in relaxed:
            annotation = Union[annotation, None]  # noqa: UP007 - annotation is a runtime value
            default: Any = None if param.required else param.default
        else:
            default = ... if param.required else param.default
        field_name = param.name
        alias: str | None = None
        if hasattr(BaseModel, field_name):
            field_name, alias = f"field_{param.name}", param.name
        fields[field_name] = (
            annotation,
            Field(default=default, alias=alias, description=description or None),
        )
    config = ConfigDict(
        extra="allow" if accepts_extra else "forbid",
        protected_namespaces=(),
        populate_by_name=False,
    )
    try:
        return create_model(model_name, __config__=config, **fields)
    except (PydanticSchemaGenerationError, PydanticUserError, TypeError) as exc:
        raise PluginError(
            f"endpoint method {where}: cannot build its request model: {exc}; use JSON-friendly "
            "parameter types (str, int, float, bool, Literal, list, dict, pydantic models)"
        ) from exc


def model_values(model: BaseModel) -> dict[str, Any]:
    """The keyword arguments for the endpoint method from a validated request model.

    Values are read attribute by attribute (nested pydantic models stay models); extra fields
    accepted for a ``**kwargs`` method are included as they came.
    """
    values = {
        (field.alias or name): getattr(model, name)
        for name, field in type(model).model_fields.items()
    }
    values.update(model.model_extra or {})
    return values


def camel(name: str) -> str:
    """``suspend_batch`` → ``SuspendBatch``; used for model names."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))
