"""Settings of the ``ee_cloud_storage`` plugin.

``[plugins.ee_cloud_storage]`` in TOML, ``MAILPROXY_EE_CLOUD_STORAGE__*`` in the environment
(``MAILPROXY_EE_CLOUD_STORAGE__S3__ENDPOINT_URL`` for a nested key). The ``s3``, ``gcs`` and
``azure`` tables hold the plugin's *own* credentials: those used for storage URLs
(``s3://bucket/prefix`` in ``large_file_config.storage_url``) that name no tenant mount. A value
left out there falls back to each cloud's standard environment and default credential chain.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

SETTINGS_SECTION = "ee_cloud_storage"
"""The plugin's name, and so its settings section."""


class S3Defaults(BaseModel):
    """Credentials and endpoint of ``s3://`` storage URLs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    region: str | None = Field(default=None, description="AWS region (else AWS_REGION ...).")
    endpoint_url: str | None = Field(
        default=None,
        description="S3-compatible endpoint (else AWS_ENDPOINT_URL, else AWS itself).",
    )
    access_key_id: str | None = Field(default=None, description="Else AWS_ACCESS_KEY_ID ...")
    secret_access_key: SecretStr | None = Field(
        default=None, description="Else AWS_SECRET_ACCESS_KEY, profiles, instance roles."
    )


class GcsDefaults(BaseModel):
    """Credentials and endpoint of ``gs://`` storage URLs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    project: str | None = Field(default=None, description="Google Cloud project.")
    credentials_json: SecretStr | None = Field(
        default=None,
        description=(
            "A service account key (JSON text). Else GOOGLE_APPLICATION_CREDENTIALS and the "
            "application default credentials (workload identity, metadata server)."
        ),
    )
    endpoint_url: str | None = Field(
        default=None, description="GCS-compatible endpoint (else STORAGE_EMULATOR_HOST)."
    )


class AzureDefaults(BaseModel):
    """Credentials and endpoint of ``az://`` storage URLs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account_name: str | None = Field(
        default=None, description="Storage account (else AZURE_STORAGE_ACCOUNT_NAME)."
    )
    account_key: SecretStr | None = Field(default=None, description="Shared key.")
    sas_token: SecretStr | None = Field(default=None, description="A SAS token.")
    connection_string: SecretStr | None = Field(
        default=None, description="Else AZURE_STORAGE_CONNECTION_STRING."
    )
    endpoint_url: str | None = Field(
        default=None, description="Blob endpoint, e.g. an Azurite URL ending in the account."
    )


class CloudStorageSettings(BaseModel):
    """The plugin's own credentials, client behaviour and the expired-file sweep."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    s3: S3Defaults = Field(default_factory=S3Defaults)
    gcs: GcsDefaults = Field(default_factory=GcsDefaults)
    azure: AzureDefaults = Field(default_factory=AzureDefaults)
    mount_default_credentials: bool = Field(
        default=True,
        description=(
            "Whether a tenant's mount without credentials may use the instance's default "
            "credential chain (instance role, workload identity, environment). Set false "
            "when the instance's own identity reaches buckets tenants must not read: mounts "
            "must then carry their own credentials."
        ),
    )
    timeout: float = Field(
        default=30.0, gt=0, description="Seconds for connecting to and reading from a store."
    )
    retries: int = Field(
        default=2,
        ge=1,
        le=10,
        description=(
            "Attempts of one request inside the client before it counts as failed; the "
            "message is then retried later by the dispatcher (throttling, 5xx, timeouts)."
        ),
    )
    sweep_interval: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds between two rounds deleting large files whose link expired.",
    )
    max_cached_clients: int = Field(
        default=256, ge=1, description="Clients kept open at most (one per credentials set)."
    )
