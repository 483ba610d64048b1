"""The ``instance`` entity: health, status, instance settings and the plugin list (docs/api.md)."""

from __future__ import annotations

from typing import Any

from ..api.endpoint import POST, Endpoint, admin_only, any_principal, public
from ..crypto import hash_token
from ..records.secrets import redact, seal, secret_value_errors
from .batches import activate_batch, suspend_batch
from .edition import Edition, current_edition, loaded_ee_plugins, require_edition
from .fields import FieldErrors
from .views import utc_text

MIN_API_TOKEN_LENGTH = 16
"""The shortest admin token ``instance/update`` accepts."""


def _instance_view(row: dict[str, Any], edition: Edition) -> dict[str, Any]:
    """The instance object of the API (``ok: true`` and the settings): never a token or its
    hash, never a secret config value.

    Config entries whose name is a secret (``relay_password``, ``api_key`` ...) are stored
    encrypted and listed by name in ``secret_config_keys`` instead of being shown. ``edition``
    is derived from the loaded plugins (``edition.py``), not read from the row.
    """
    config, secret_keys = redact(row.get("config") or {})
    return {
        "ok": True,  # genro-mail-proxy clients check it in both answers
        "name": row.get("name"),
        "edition": edition,
        "config": config,
        "secret_config_keys": secret_keys,
        "created_at": utc_text(row.get("created_at")),
        "updated_at": utc_text(row.get("updated_at")),
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
        """The instance settings: name, edition and free-form config (no secrets).

        ``edition`` is ``ee`` when an Enterprise plugin (name ``ee_*``) is loaded, else ``ce``.
        """
        return _instance_view(await self.mp.repos.instance.get(), current_edition(self.mp))

    @admin_only
    @POST
    async def update(
        self,
        name: str | None = None,
        api_token: str | None = None,
        edition: Edition | None = None,
        config: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Change the instance name, admin token or config (config keys are merged).

        A config key set to null is removed. Secret-named config values (``*_password``,
        ``*_token``, ``api_key`` ...) must be strings; they are stored encrypted and never shown.
        ``api_token`` (at least 16 characters) becomes the stored admin token at once, in every
        process sharing the database: only its hash is kept, it replaces the stored token
        (generated on first start or set here before), and a token configured in the
        environment stays valid. ``edition`` follows the installed plugins and cannot be
        changed: the current value is accepted, the other one is refused with 409 naming what
        to install.

        Args:
            name: the instance's display name.
            api_token: a new admin token (at least 16 characters; a long random value).
            edition: ``ce`` or ``ee``; must equal the current edition.
            config: free-form settings merged into the stored ones.
        """
        errors = FieldErrors()
        if api_token is not None and len(api_token) < MIN_API_TOKEN_LENGTH:
            errors.add(
                "api_token",
                f"must be at least {MIN_API_TOKEN_LENGTH} characters long "
                f"(got {len(api_token)}); use a long random value",
                "too_short",
            )
        if config is not None:
            errors.extend(secret_value_errors(config, "config"))
        errors.raise_if_any()
        if edition is not None:
            require_edition(self.mp, edition)
        fields: dict[str, Any] = {}
        if name is not None:
            fields["name"] = name
        if config is not None:
            fields["config"] = seal(self.mp.secrets, config)
        if api_token is not None:
            fields["admin_token_hash"] = hash_token(api_token)
        if fields:
            await self.mp.repos.instance.update(**fields)
        return _instance_view(await self.mp.repos.instance.get(), current_edition(self.mp))

    @admin_only
    @POST
    async def upgrade_to_ee(self) -> dict[str, Any]:
        """Confirm the Enterprise edition: ``{"ok": true, "edition": "ee", "plugins": [...]}``.

        The edition follows the installed plugins, so this changes nothing: it lists the loaded
        Enterprise plugins, or answers 409 naming the distributions to ``pip install`` when
        none is loaded.
        """
        require_edition(self.mp, "ee")
        return {"ok": True, "edition": "ee", "plugins": loaded_ee_plugins(self.mp)}

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
        Reserved to the instance admin, like every instance write (docs/api.md).

        Args:
            tenant_id: the tenant to poll at once.
        """
        self.mp.wake_dispatcher(run_now=True)
        self.mp.request_report(tenant_id)
        self.mp.request_receipt_poll()
        return {"ok": True}
