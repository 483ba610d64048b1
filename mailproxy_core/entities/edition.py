"""The instance's edition, derived from the loaded plugins and never stored.

The edition is ``ee`` when at least one Enterprise plugin is loaded, else ``ce``. An Enterprise
plugin is one whose entry-point (plugin) name starts with ``ee_``: ``ee_apikeys``, ``ee_bounce``,
``ee_cloud_storage``, ``ee_pec``. Installing one of their distributions is what turns an
instance into EE; no API call can, so ``instance/upgrade_to_ee`` only confirms it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ..errors import Conflict

if TYPE_CHECKING:
    from ..kernel import MailProxy

Edition = Literal["ce", "ee"]

EE_PLUGIN_PREFIX = "ee_"
"""Plugin names starting with this are Enterprise plugins."""

EE_DISTRIBUTIONS = (
    "mailproxy-ee-apikeys",
    "mailproxy-ee-bounce",
    "mailproxy-ee-cloud-storage",
    "mailproxy-ee-pec",
)
"""The Enterprise distributions, named in the answer when none is loaded."""


def loaded_ee_plugins(mp: MailProxy) -> list[str]:
    """The names of the loaded Enterprise plugins, sorted."""
    return sorted(
        info.name
        for info in mp.plugins
        if info.status == "loaded" and info.name.startswith(EE_PLUGIN_PREFIX)
    )


def current_edition(mp: MailProxy) -> Edition:
    """``ee`` when an Enterprise plugin is loaded, else ``ce``."""
    return "ee" if loaded_ee_plugins(mp) else "ce"


def require_edition(mp: MailProxy, wanted: Edition) -> None:
    """Check that ``wanted`` is the instance's edition.

    Raises:
        Conflict: (409) it is not; the text says which distributions to install (for ``ee``)
            or which plugins make the instance EE (for ``ce``).
    """
    current = current_edition(mp)
    if wanted == current:
        return
    if wanted == "ee":
        raise Conflict(
            "no Enterprise plugin is loaded, so the edition is 'ce'; the edition follows the "
            "installed plugins: install one or more of "
            f"{', '.join(EE_DISTRIBUTIONS)} (pip install <distribution>) and restart",
            code="edition_not_installed",
        )
    raise Conflict(
        "the edition is 'ee' because these Enterprise plugins are loaded: "
        f"{', '.join(loaded_ee_plugins(mp))}; uninstall or disable them to run as 'ce'",
        code="edition_mismatch",
    )
