"""Settings of the ``smtp`` plugin: ``[plugins.smtp]`` in TOML, ``MAILPROXY_SMTP__*`` variables."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, FilePath


class SmtpSettings(BaseModel):
    """How the SMTP transport connects, pools connections and waits for servers.

    Every field can be set in TOML (``[plugins.smtp] max_connections = 5``) or in the
    environment (``MAILPROXY_SMTP__MAX_CONNECTIONS=5``). Durations are seconds.
    """

    model_config = ConfigDict(frozen=True)

    max_connections: int = Field(
        default=3,
        ge=1,
        description=(
            "Most connections open at once to one (host, port, user); further sends wait their "
            "turn in arrival order. Matches the kernel's per-account limit of in-flight sends."
        ),
    )
    idle_timeout: float = Field(
        default=60.0,
        gt=0,
        description="A pooled connection unused for this long is closed (QUIT).",
    )
    health_check_after: float = Field(
        default=5.0,
        ge=0,
        description=(
            "A pooled connection idle for longer than this is checked with NOOP before it is "
            "reused; 0 checks before every reuse."
        ),
    )
    connect_timeout: float = Field(
        default=15.0,
        gt=0,
        description="Limit for the TCP connect, the TLS handshake and the server's greeting.",
    )
    command_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Limit for the reply to each command (EHLO, STARTTLS, AUTH, MAIL, RCPT, NOOP).",
    )
    data_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Limit for DATA: the 354 go-ahead, and the final reply after the message.",
    )
    close_timeout: float = Field(
        default=5.0,
        gt=0,
        description="Limit for the polite QUIT when closing a connection; then it is dropped.",
    )
    verify_tls: bool = Field(
        default=True,
        description=(
            "Verify the server's TLS certificate and host name. Turn off only for test setups "
            "with self-signed certificates."
        ),
    )
    ca_file: FilePath | None = Field(
        default=None,
        description=(
            "PEM file of extra certificate authorities to trust (a private relay's CA), in "
            "addition to the system's trusted CAs."
        ),
    )
    implicit_tls_ports: list[int] = Field(
        default=[465],
        description=(
            "Ports where TLS starts before the SMTP greeting (SMTPS) for accounts with "
            "use_tls true or unset; on any other port TLS is negotiated with STARTTLS."
        ),
    )
    local_hostname: str | None = Field(
        default=None,
        description="Name sent with EHLO; default: this machine's fully qualified name.",
    )
