"""Renders ``docs/hooks.md`` from the hook specs, so the reference never drifts from the code.

``python -m mailproxy_core.plugins.hookdoc > docs/hooks.md`` regenerates it; a test fails when the
file is out of date or a hook lacks a docstring.
"""

from __future__ import annotations

import inspect

from . import hookspecs

INTRO = """\
# Hook reference

<!-- examples: compile-only (fragments of plugins: names come from the plugin around them) -->

Every hook of mail-proxy, generated from `mailproxy_core/plugins/hookspecs.py`
(`python -m mailproxy_core.plugins.hookdoc > docs/hooks.md`; a test fails when this file is stale).
Implement a hook with `@hookimpl` from `mailproxy_core`, using the hook's name and any subset of
its argument names. See `docs/plugins.md` for a walk-through.

Five kinds of hooks:

- **Registration** hooks are sync, called once per app at creation, and return iterables of spec
  objects (`mailproxy_core.specs`). A name registered twice is a startup error naming both plugins.
- **Decision** hooks are sync and `firstresult`: return an answer, or `None` to let the next
  implementation decide. The kernel's own answer is registered `trylast`.
- **Mutation** hooks are sync and broadcast: every implementation changes the object in place.
- **Event** hooks may be `async def`. They are awaited one at a time; an implementation that
  raises is logged with the plugin's name and does not stop the others; results are ignored.
- **Entity** hooks may be `async def` too, but run inside the API call that triggers them (in its
  transaction): every implementation is awaited, results are used, and an exception aborts the call.

An `async def` implementation of a registration, decision or mutation hook is a startup error
(pluggy would return an un-awaited coroutine): put async work on the objects you register.
"""

SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Registration hooks", hookspecs.REGISTRATION_HOOKS),
    ("Decision hooks", hookspecs.DECISION_HOOKS),
    ("Mutation hooks", hookspecs.MUTATION_HOOKS),
    ("Event hooks", hookspecs.EVENT_HOOKS),
    ("Entity hooks", hookspecs.ENTITY_HOOKS),
)


def _signature(name: str) -> str:
    function = getattr(hookspecs, name)
    sig = inspect.signature(function)
    params = ", ".join(sig.parameters)
    returns = sig.return_annotation
    return f"{name}({params}) -> {returns}"


def render() -> str:
    """The whole markdown document."""
    parts = [INTRO]
    for title, names in SECTIONS:
        parts.append(f"\n## {title}\n")
        for name in names:
            doc = inspect.getdoc(getattr(hookspecs, name)) or ""
            summary, _, rest = doc.partition("\n")
            parts.append(f"\n### `{name}`\n\n`{_signature(name)}`\n\n{summary}\n")
            body = rest.strip("\n")
            if body:
                parts.append(f"\n{_as_markdown(body)}\n")
    return "".join(parts)


def _as_markdown(text: str) -> str:
    """Turn the docstring's ``Example::`` block into a fenced Python block."""
    head, marker, example = text.partition("Example::")
    if not marker:
        return text
    code = inspect.cleandoc(example)
    return f"{head.rstrip()}\n\nExample:\n\n```python\n{code}\n```"


if __name__ == "__main__":
    print(render(), end="")
