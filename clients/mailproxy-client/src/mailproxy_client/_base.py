"""Base classes of the generated route methods: each holds only the function that sends a call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

SyncCaller = Callable[[str, str, Mapping[str, Any]], Any]
AsyncCaller = Callable[[str, str, Mapping[str, Any]], Awaitable[Any]]


class SyncEntity:
    """A group of blocking route methods sharing one HTTP client."""

    def __init__(self, caller: SyncCaller) -> None:
        self._caller = caller
        self._attach_entities()

    def _attach_entities(self) -> None:
        """Create the entity attributes (the root API overrides it)."""

    def _call(self, method: str, path: str, params: Mapping[str, Any]) -> Any:
        return self._caller(method, path, params)


class AsyncEntity:
    """A group of awaitable route methods sharing one HTTP client."""

    def __init__(self, caller: AsyncCaller) -> None:
        self._caller = caller
        self._attach_entities()

    def _attach_entities(self) -> None:
        """Create the entity attributes (the root API overrides it)."""

    async def _call(self, method: str, path: str, params: Mapping[str, Any]) -> Any:
        return await self._caller(method, path, params)
