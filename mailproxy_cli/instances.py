"""Named instances (``$MAILPROXY_HOME/NAME/``) and the current instance and tenant.

Each instance directory holds ``config.toml`` (database, host, port), the SQLite database
``mail.db``, the admin ``token`` (readable by its owner only), ``server.pid`` while it runs and
``server.log``. ``.current`` in the home directory names the current ``INSTANCE[/TENANT]``.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import click

from .home import home_dir

DEFAULT_PORT = 8000
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
# Settings the instance's own config.toml must decide, not the caller's environment.
_OVERRIDING_ENV = (
    "MAILPROXY_DB",
    "GMP_DB_PATH",
    "MAILPROXY_HOST",
    "MAILPROXY_PORT",
    "MAILPROXY_CONFIG",
    "MAILPROXY_API_TOKEN",
    "GMP_API_TOKEN",
)


@dataclass(frozen=True, slots=True)
class Instance:
    """One named instance, by its directory."""

    name: str
    path: Path

    @property
    def config_path(self) -> Path:
        return self.path / "config.toml"

    @property
    def token_path(self) -> Path:
        return self.path / "token"

    @property
    def pid_path(self) -> Path:
        return self.path / "server.pid"

    @property
    def log_path(self) -> Path:
        return self.path / "server.log"

    def config(self) -> dict[str, object]:
        """The instance's settings file, parsed."""
        with self.config_path.open("rb") as handle:
            return tomllib.load(handle)

    @property
    def port(self) -> int:
        return int(self.config().get("port", DEFAULT_PORT))  # type: ignore[call-overload]

    @property
    def url(self) -> str:
        host = str(self.config().get("host", "127.0.0.1"))
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    def token(self) -> str | None:
        """The admin token, or ``None`` when the file is missing."""
        try:
            return self.token_path.read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    def pid(self) -> int | None:
        """The PID of the running server; a stale PID file is removed and gives ``None``."""
        try:
            pid = int(self.pid_path.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None
        if _is_our_server(pid):
            return pid
        self.pid_path.unlink(missing_ok=True)
        return None


def _is_our_server(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ")
        except OSError:
            return False
        if not text:  # a zombie: exited, not yet reaped
            return False
        return b"mailproxy" in text or b"mail-proxy" in text
    return True


def instance(name: str) -> Instance:
    """The instance called ``name`` (it may not exist yet)."""
    if not name or "/" in name or name.startswith("."):
        raise click.BadParameter(f"{name!r} is not a valid instance name")
    return Instance(name, home_dir() / name)


def all_instances() -> list[Instance]:
    """Every instance that has a config file, by name."""
    home = home_dir()
    if not home.is_dir():
        return []
    return [
        Instance(path.name, path)
        for path in sorted(home.iterdir())
        if not path.name.startswith(".") and (path / "config.toml").is_file()
    ]


def exists(name: str) -> bool:
    """Whether ``name`` is an instance with a config file."""
    return bool(name) and "/" not in name and (home_dir() / name / "config.toml").is_file()


# -- current instance and tenant -----------------------------------------------------------


def _current_path() -> Path:
    return home_dir() / ".current"


def read_current() -> tuple[str | None, str | None]:
    """``(instance, tenant)`` from the ``.current`` file (either may be ``None``)."""
    try:
        text = _current_path().read_text(encoding="utf-8").strip()
    except OSError:
        return None, None
    name, _, tenant = text.partition("/")
    return name or None, tenant or None


def write_current(name: str | None, tenant: str | None) -> None:
    """Store the current instance and tenant."""
    path = _current_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{name or ''}/{tenant or ''}\n", encoding="utf-8")


def resolve_instance(explicit: str | None = None) -> Instance | None:
    """The selected instance: the explicit name, ``GMP_INSTANCE``, the current file, or the only
    instance there is; ``None`` when none of these names one."""
    for name in (explicit, os.environ.get("GMP_INSTANCE"), read_current()[0]):
        if name:
            return instance(name)
    found = all_instances()
    return found[0] if len(found) == 1 else None


def resolve_tenant(explicit: str | None = None) -> str | None:
    """The selected tenant: the explicit one, ``GMP_TENANT``, then the current file's."""
    return explicit or os.environ.get("GMP_TENANT") or read_current()[1]


# -- starting and stopping -----------------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_port() -> int:
    taken = {inst.port for inst in all_instances()}
    for port in range(DEFAULT_PORT, DEFAULT_PORT + 100):
        if port not in taken and _port_free(port):
            return port
    raise click.ClickException("no free port between 8000 and 8099; pass -p PORT")


def create(inst: Instance, port: int | None) -> None:
    """Create the instance directory, its config and its admin token."""
    inst.path.mkdir(parents=True, exist_ok=True)
    chosen = port or _pick_port()
    inst.config_path.write_text(
        f'db = "{inst.path / "mail.db"}"\nhost = "127.0.0.1"\nport = {chosen}\n',
        encoding="utf-8",
    )
    write_token(inst)


def write_token(inst: Instance) -> None:
    """Write a new random admin token to the instance's token file (owner-only)."""
    inst.token_path.unlink(missing_ok=True)
    fd = os.open(inst.token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")


def set_port(inst: Instance, port: int) -> None:
    """Change the port in the instance's config."""
    lines = inst.config_path.read_text(encoding="utf-8").splitlines()
    lines = [f"port = {port}" if line.startswith("port") else line for line in lines]
    inst.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def start(inst: Instance) -> int:
    """Start the instance's server in the background and wait until it answers.

    Returns:
        The server's PID.

    Raises:
        click.ClickException: the server exited or did not answer in time (with its log's end).
    """
    import httpx

    env = {k: v for k, v in os.environ.items() if k not in _OVERRIDING_ENV}
    token = inst.token()
    if token:
        env["MAILPROXY_API_TOKEN"] = token
    with inst.log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mailproxy_cli", "serve", "--config", str(inst.config_path)],
            env=env,
            cwd=inst.path,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    inst.pid_path.write_text(f"{process.pid}\n", encoding="utf-8")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            inst.pid_path.unlink(missing_ok=True)
            raise click.ClickException(
                f"instance {inst.name!r} exited with status {process.returncode}; the end of "
                f"{inst.log_path}:\n{_log_tail(inst)}"
            )
        try:
            if httpx.get(f"{inst.url}/health", timeout=1.0).status_code == 200:
                return process.pid
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise click.ClickException(
        f"instance {inst.name!r} did not answer at {inst.url} within {START_TIMEOUT:.0f} s; "
        f"see {inst.log_path}"
    )


def _log_tail(inst: Instance, lines: int = 15) -> str:
    try:
        return "\n".join(inst.log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop(inst: Instance, *, force: bool) -> bool:
    """Stop the instance's server (SIGTERM, or SIGKILL with ``force``) and wait for it.

    Returns:
        ``False`` when it was not running.
    """
    pid = inst.pid()
    if pid is None:
        return False
    os.kill(pid, signal.SIGKILL if force else signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and _is_our_server(pid):
        time.sleep(0.1)
    if _is_our_server(pid):
        raise click.ClickException(
            f"instance {inst.name!r} (pid {pid}) did not stop within {STOP_TIMEOUT:.0f} s; "
            "use -f to kill it"
        )
    inst.pid_path.unlink(missing_ok=True)
    return True
