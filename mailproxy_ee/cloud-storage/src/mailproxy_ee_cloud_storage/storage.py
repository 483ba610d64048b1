"""The ``s3``, ``gcs`` and ``azure`` storage backends: objects under a bucket and prefix.

A :class:`CloudStorage` is cheap: it holds its :class:`~.config.Target` and borrows its client
from the kernel's :class:`~.clients.ClientPool` on first use, so building one (as
``storages/add`` does to check a config) touches no network.

Paths are relative to the mount's prefix and may not leave it: an empty or absolute path, or one
with a ``..`` component, is refused with ``InvalidInput`` before any request. Failures are
classified the way the attachment fetcher and the large-file writer expect:

- no such object → ``FileNotFoundError`` (permanent: "no file ... in storage ...");
- access denied, bad credentials, no such bucket, a refused request → :class:`StorageRefused`
  (a ``MailproxyError``: permanent, with the store's reason);
- throttling, 5xx, timeouts, connection failures → :class:`StorageUnavailable` (an
  ``OSError``: transient, the message is retried later).

Error texts never contain credentials: configured secret values and URL signatures are
replaced by ``***``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine
from typing import Any, TypeVar

from mailproxy_core import InvalidInput, MailproxyError

from .clients import ClientPool, run
from .config import Target, account_key_of

T = TypeVar("T")

MAX_SIGNED_LINK_SECONDS = 7 * 86400
"""S3 and GCS (signature version 4) refuse presigned URLs valid longer than seven days."""

SIGNATURE_PARAMS = re.compile(
    r"((?:sig|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|X-Goog-Signature|"
    r"X-Goog-Credential|Signature|AccountKey|SharedAccessSignature)=)[^&;\s'\"]+",
    re.IGNORECASE,
)

TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
REFUSED_CODES = frozenset(
    {
        "AccessDenied",
        "AuthorizationFailure",
        "AuthenticationFailed",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "NoSuchBucket",
        "ContainerNotFound",
        "AllAccessDisabled",
        "AccountIsDisabled",
        "InvalidBucketName",
    }
)
THROTTLING_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "ServerBusy",
        "InternalError",
        "ServiceUnavailable",
        "OperationTimedOut",
        "RequestTimeout",
    }
)


UNREACHABLE_WORDS = ("Connect", "Timeout", "ServiceRequest", "ServiceResponse")
"""Words in the names of the libraries' connection and timeout errors."""


class StorageRefused(MailproxyError):
    """The store refused the request for good (access denied, no such bucket ...)."""

    status = 502
    code = "storage_refused"


class StorageUnavailable(OSError):
    """The store is throttling, failing or unreachable right now: try again later."""


class CloudStorage:
    """Reads and writes objects below ``<container>/<prefix>`` of one cloud store."""

    def __init__(self, target: Target, pool: ClientPool) -> None:
        self.target = target
        self.pool = pool

    @property
    def protocol(self) -> str:
        return self.target.protocol

    # -- paths ---------------------------------------------------------------------------------

    def key(self, path: str) -> str:
        """The object key of ``path`` (prefix included); ``InvalidInput`` for unsafe paths."""
        relative = path.replace("\\", "/")
        parts = [part for part in relative.split("/") if part not in ("", ".")]
        if not parts or "\x00" in relative or relative.startswith("/"):
            raise InvalidInput(f"storage path '{path}' must be a relative file path")
        if ".." in parts:
            raise InvalidInput(f"storage path '{path}' must not contain '..'")
        return self.target.prefix + "/".join(parts)

    def full(self, key: str) -> str:
        """``<container>/<key>``, the path fsspec expects."""
        return f"{self.target.container}/{key}"

    # -- the StorageBackend protocol -----------------------------------------------------------

    async def read(self, path: str, max_bytes: int | None = None) -> bytes:
        """The object's bytes; ``FileNotFoundError`` when it does not exist.

        With ``max_bytes`` the object is read with one ranged GET of its first ``max_bytes + 1``
        bytes, so a caller enforcing a size cap sees that the object is larger without
        downloading it all. The bytes come from that one response: nothing is taken from an
        earlier request (the object may be replaced between two requests).
        """
        key = self.key(path)
        fs = await self._client()
        full = self.full(key)
        if max_bytes is None:
            # s3fs would first HEAD the object to split large reads; one GET is enough here
            whole = {"max_concurrency": 1} if self.protocol == "s3" else {}
            return await self._call(path, fs._cat_file(full, **whole))
        if max_bytes < 0:
            raise InvalidInput("max_bytes must not be negative")
        data: bytes = await self._call(path, _first_bytes(fs, full, max_bytes + 1))
        return data

    async def write(self, path: str, data: bytes) -> None:
        """Create or replace the object (a single upload: it appears whole or not at all)."""
        key = self.key(path)
        fs = await self._client()
        await self._call(path, fs._pipe_file(self.full(key), bytes(data)))

    async def delete(self, path: str) -> None:
        """Remove the object; a missing one is fine."""
        key = self.key(path)
        fs = await self._client()
        try:
            await self._call(path, fs._rm_file(self.full(key)))
        except FileNotFoundError:
            pass

    async def exists(self, path: str) -> bool:
        """Whether the object exists."""
        key = self.key(path)
        fs = await self._client()
        try:
            await self._call(path, fs._info(self.full(key)))
        except FileNotFoundError:
            return False
        return True

    async def url(self, path: str, expires_in: int | None = None) -> str | None:
        """The store's presigned GET URL of the object, valid ``expires_in`` seconds (default
        one day; S3 and GCS cap it at seven days).

        S3 signs with the client's credentials (keys or the role's session); Azure needs a
        shared key (``account_key`` or a connection string holding one); GCS needs a service
        account key (``credentials_json``). Without what signs, ``StorageRefused`` says so.
        """
        key = self.key(path)
        seconds = max(1, int(expires_in or 86400))
        fs = await self._client()
        full = self.full(key)
        if self.protocol == "s3":
            seconds = min(seconds, MAX_SIGNED_LINK_SECONDS)
            url: str = await self._call(path, fs._url(full, expires=seconds))
            return url
        if self.protocol == "azure":
            if account_key_of(self.target) is None:
                raise StorageRefused(
                    f"{self.target.describe()} cannot sign download links: give the mount an "
                    "account_key (or a connection string with an AccountKey)"
                )
            url = await self._call(path, fs._url(full, expires=seconds))
            return url
        token = self.target.options.get("token")
        if not isinstance(token, dict) or token.get("type") != "service_account":
            raise StorageRefused(
                f"{self.target.describe()} cannot sign download links: give the mount a "
                "service account key in credentials_json"
            )
        seconds = min(seconds, MAX_SIGNED_LINK_SECONDS)
        try:
            signed: str = await asyncio.to_thread(fs.sign, full, seconds, version="v4")
        except Exception as err:  # google-auth signing errors
            raise StorageRefused(
                f"signing a link for '{path}' in {self.target.describe()} failed: "
                f"{self._scrub(str(err))}"
            ) from None
        return signed

    # -- listing (the expired-file sweep) ------------------------------------------------------

    async def list_dirs(self, prefix: str) -> list[str]:
        """Names of the "directories" right below ``prefix`` (relative to the mount)."""
        base = self.full(self.target.prefix + prefix).rstrip("/")
        fs = await self._client()
        try:
            entries = await self._call(prefix or "/", fs._ls(base, detail=True, refresh=True))
        except FileNotFoundError:
            return []
        names = []
        for entry in entries:
            if entry.get("type") == "directory":
                names.append(str(entry["name"]).rstrip("/").rsplit("/", 1)[-1])
        return names

    async def delete_tree(self, prefix: str) -> int:
        """Delete every object below ``prefix`` (relative to the mount); returns how many."""
        base = self.full(self.key(prefix))
        fs = await self._client()
        try:
            found = await self._call(prefix, fs._find(base))
        except FileNotFoundError:
            return 0
        for item in found:
            try:
                await self._call(prefix, fs._rm_file(item))
            except FileNotFoundError:
                pass
        fs.invalidate_cache(base)
        return len(found)

    # -- plumbing ------------------------------------------------------------------------------

    async def _client(self) -> Any:
        return await self.pool.client(self.target)

    async def _call(self, path: str, coroutine: Coroutine[Any, Any, T]) -> T:
        fs = await self._client()
        try:
            return await asyncio.wait_for(run(fs, coroutine), self.pool.settings.timeout * 4)
        except FileNotFoundError:
            raise FileNotFoundError(f"no object '{path}' in {self.target.describe()}") from None
        except TimeoutError:
            raise StorageUnavailable(
                f"{self.target.describe()} did not answer in time for '{path}'"
            ) from None
        except MailproxyError:
            raise
        except Exception as err:
            raise self.classify(path, err) from None

    def classify(self, path: str, err: BaseException) -> Exception:
        """The exception to raise for a library error (see the module docstring)."""
        status, code = _status_and_code(err)
        reason = self._scrub(_reason(err))
        where = f"'{path}' in {self.target.describe()}"
        if status == 404 and code not in ("NoSuchBucket", "ContainerNotFound"):
            return FileNotFoundError(f"no object {where}")
        if code in THROTTLING_CODES or status in TRANSIENT_STATUS:
            return StorageUnavailable(f"{where}: the store is busy or failing ({reason})")
        if code in REFUSED_CODES or status in (400, 401, 403, 404, 409, 412, 416):
            return StorageRefused(f"{where}: the store refused the request ({reason})")
        if isinstance(err, PermissionError):
            return StorageRefused(f"{where}: access denied ({reason})")
        if status is None and _unreachable(err):
            return StorageUnavailable(f"{where}: the store could not be reached ({reason})")
        return StorageRefused(f"{where}: the request failed ({reason})")

    def _scrub(self, text: str) -> str:
        for secret in self.target.secrets:
            if secret:
                text = text.replace(secret, "***")
        return SIGNATURE_PARAMS.sub(r"\1***", text)


async def _first_bytes(fs: Any, full: str, count: int) -> bytes:
    """The first ``count`` bytes of the object (fewer when it is shorter), in one ranged GET.

    The stores answer a range starting at 0 of an empty object with ``416 InvalidRange``:
    that object's content is ``b""``.
    """
    try:
        data: bytes = await fs._cat_file(full, start=0, end=count)
    except Exception as err:
        status, code = _status_and_code(err)
        if status == 416 or code == "InvalidRange":
            return b""
        raise
    return data


def _status_and_code(err: BaseException) -> tuple[int | None, str | None]:
    """HTTP status and error code of an s3fs/botocore, gcsfs or azure error (or its causes)."""
    seen: set[int] = set()
    node: BaseException | None = err
    status: int | None = None
    code: str | None = None
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        response = getattr(node, "response", None)
        if isinstance(response, dict):  # botocore ClientError
            error = response.get("Error") or {}
            code = code or (str(error.get("Code")) if error.get("Code") else None)
            meta = response.get("ResponseMetadata") or {}
            status = status or _int(meta.get("HTTPStatusCode"))
        azure_status = getattr(node, "status_code", None)  # azure HttpResponseError
        if status is None and isinstance(azure_status, int):
            status = azure_status
        azure_code = getattr(node, "error_code", None)
        if code is None and azure_code:
            code = str(azure_code)
        gcs_code = getattr(node, "code", None)  # gcsfs HttpError
        if status is None and isinstance(gcs_code, int):
            status = gcs_code
        node = node.__cause__ or node.__context__
    return status, code


def _unreachable(err: BaseException) -> bool:
    """Whether ``err`` (or a cause) is a connection failure or a timeout of any library."""
    seen: set[int] = set()
    node: BaseException | None = err
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if isinstance(node, (OSError, TimeoutError, asyncio.TimeoutError)):
            return True
        name = type(node).__name__
        # botocore EndpointConnectionError / ReadTimeoutError, aiohttp ClientConnectorError,
        # azure ServiceRequestError / ServiceResponseError
        if any(
            word in name for word in ("Connect", "Timeout", "ServiceRequest", "ServiceResponse")
        ):
            return True
        node = node.__cause__ or node.__context__
    return False


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    return first[:300] or type(err).__name__
