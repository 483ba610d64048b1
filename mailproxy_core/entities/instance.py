"""The ``instance`` entity: health, status, instance settings and the plugin list (API.md §3)."""

from __future__ import annotations

from typing import Any

from ..api.endpoint import POST, Endpoint, admin_only, any_principal, public
from .batches import activate_batch, suspend_batch
from .fields import FieldErrors
from .secrets import redact, seal, secret_value_errors


def _instance_view(row: dict[str, Any]) -> dict[str, Any]:
    """The instance object of the API: never the admin token hash, never a secret config value.

    Config entries whose name is a secret (``relay_password``, ``api_key`` ...) are stored
    encrypted and listed by name in ``secret_config_keys`` instead of being shown.
    """
    config, secret_keys = redact(row.get("config") or {})
    return {
        "name": row.get("name"),
        "edition": row.get("edition"),
        "config": config,
        "secret_config_keys": secret_keys,
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
        """Change the instance name, edition or config (config keys are merged).

        A config key set to null is removed. Secret-named config values (``*_password``,
        ``*_token``, ``api_key`` ...) must be strings; they are stored encrypted and never shown.
        """
        if config is not None:
            errors = FieldErrors()
            errors.extend(secret_value_errors(config, "config"))
            errors.raise_if_any()
            config = seal(self.mp.secrets, config)
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

    @POST
    @admin_only
    async def suspend(self, tenant_id: str, batch_code: str | None = None) -> dict[str, Any]:
        """Stop sending one batch of a tenant, or everything when batch_code is left out.

        The same as tenants/suspend_batch, reserved to the instance admin. Returns
        ``{"ok": true, "tenant_id", "suspended_batches": [...]}``.

        Args:
            tenant_id: the tenant.
            batch_code: the batch to suspend; omit it to suspend everything ("*").
        """
        return await suspend_batch(self.mp, tenant_id, batch_code)

    @POST
    @admin_only
    async def activate(self, tenant_id: str, batch_code: str | None = None) -> dict[str, Any]:
        """Resume sending one batch of a tenant, or everything when batch_code is left out.

        The same as tenants/activate_batch, reserved to the instance admin: activating one
        batch while everything is suspended ("*") is refused with 409.

        Args:
            tenant_id: the tenant.
            batch_code: the batch to resume; omit it to resume everything.
        """
        return await activate_batch(self.mp, tenant_id, batch_code)

    @POST
    @admin_only
    async def run_now(self, tenant_id: str | None = None) -> dict[str, Any]:
        """Wake the dispatcher, the reporting loop and the receipt handlers now.

        Everything ready is sent at once (also in test mode, where this is the only trigger),
        and every tenant with unreported events is reported, ignoring back-off. With
        ``tenant_id``, that tenant's do-not-disturb is cleared and it is polled at once. Every
        receipt handler (bounce mailbox, PEC mailboxes) is polled at once too.
        Reserved to the instance admin, like every instance write (API.md §2).

        Args:
            tenant_id: the tenant to poll at once.
        """
        self.mp.wake_dispatcher(run_now=True)
        self.mp.request_report(tenant_id)
        self.mp.request_receipt_poll()
        return {"ok": True}
