"""The ``instance`` entity: health, status, instance settings and the plugin list (API.md §3)."""

from __future__ import annotations

from typing import Any

from ..api.endpoint import POST, Endpoint, admin_only, any_principal, public


def _instance_view(row: dict[str, Any]) -> dict[str, Any]:
    """The instance object of the API: never the admin token hash."""
    return {
        "name": row.get("name"),
        "edition": row.get("edition"),
        "config": row.get("config") or {},
        "created_at": row.get("created_at"),
        "updated_at": row.get("updated_at"),
    }


class InstanceEndpoint(Endpoint):
    """The service instance itself."""

    @public
    async def health(self) -> dict[str, str]:
        """Liveness probe: answers without touching the database."""
        return {"status": "ok"}

    @any_principal
    async def status(self) -> dict[str, Any]:
        """Whether the dispatcher runs in this process (``active``)."""
        task = self.mp.background_tasks.get("dispatcher")
        return {"ok": True, "active": task is not None and not task.done()}

    @any_principal
    async def get(self) -> dict[str, Any]:
        """The instance settings: name, edition and free-form config (no secrets)."""
        return _instance_view(await self.mp.repos.instance.get())

    @admin_only
    @POST
    async def update(
        self,
        name: str | None = None,
        edition: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Change the instance name, edition or config (config keys are merged)."""
        fields: dict[str, Any] = {}
        if name is not None:
            fields["name"] = name
        if edition is not None:
            fields["edition"] = edition
        if config is not None:
            fields["config"] = config
        if fields:
            await self.mp.repos.instance.update(**fields)
        return _instance_view(await self.mp.repos.instance.get())

    @admin_only
    async def plugins(self) -> dict[str, Any]:
        """Every plugin seen at startup: loaded, failed (with its error) or disabled."""
        return {"plugins": [info.as_dict() for info in self.mp.plugins]}
