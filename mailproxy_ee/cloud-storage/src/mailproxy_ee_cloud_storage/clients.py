"""One fsspec client per set of credentials, shared by every backend that uses it.

Clients (``S3FileSystem``, ``GCSFileSystem``, ``AzureBlobFileSystem``) are built on first use,
in a worker thread (building one may read credential files or environment), and kept in a
bounded pool per kernel keyed by protocol and options; the pool closes them at shutdown, and
closes the least recently used one when it is full. The libraries run their requests on
fsspec's own I/O event loop; :func:`run` schedules a coroutine there and awaits it from the
caller's loop, so no thread ever blocks waiting for the network.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from mailproxy_core import ConfigurationError

from .config import Target, missing_package
from .settings import CloudStorageSettings

log = logging.getLogger(__name__)

T = TypeVar("T")


def build_filesystem(target: Target, settings: CloudStorageSettings) -> Any:
    """Blocking: a new fsspec filesystem for ``target`` (never from fsspec's instance cache)."""
    problem = missing_package(target.protocol)
    if problem:
        raise ConfigurationError(problem)
    options = dict(target.options)
    timeout = settings.timeout
    try:
        if target.protocol == "s3":
            from s3fs import S3FileSystem

            config: dict[str, Any] = {
                "retries": {"total_max_attempts": settings.retries, "mode": "standard"},
                "signature_version": "s3v4",  # presigned links: SigV4, valid up to 7 days
                "connect_timeout": timeout,
                "read_timeout": timeout,
            }
            if "endpoint_url" in options:
                config["s3"] = {"addressing_style": "path"}
            fs = S3FileSystem(skip_instance_cache=True, config_kwargs=config, **options)
            fs.retries = settings.retries  # s3fs's own retry loop, on top of botocore's
            return fs
        if target.protocol == "gcs":
            # gcsfs.core, not the package's default class: that one probes every bucket's
            # layout over gRPC first, which GCS-compatible endpoints do not answer.
            from gcsfs.core import GCSFileSystem

            return GCSFileSystem(
                skip_instance_cache=True,
                requests_timeout=timeout,
                **options,
            )
        from adlfs import AzureBlobFileSystem

        return AzureBlobFileSystem(
            skip_instance_cache=True,
            connection_timeout=int(timeout),
            read_timeout=int(timeout),
            **options,
        )
    except ConfigurationError:
        raise
    except Exception as err:  # the libraries raise ValueError, RuntimeError, auth errors ...
        text = str(err)
        for secret in target.secrets:
            text = text.replace(secret, "***")
        raise ConfigurationError(
            f"cannot set up the client of {target.describe()}: {text}"
        ) from None


async def run(fs: Any, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` (one of ``fs``'s ``_`` methods) on fsspec's I/O loop and await it."""
    loop: asyncio.AbstractEventLoop = fs.loop
    future = asyncio.run_coroutine_threadsafe(coroutine, loop)
    return await asyncio.wrap_future(future)


class ClientPool:
    """The kernel's cloud clients, by :attr:`Target.client_key`."""

    def __init__(self, settings: CloudStorageSettings) -> None:
        self.settings = settings
        self._clients: OrderedDict[str, Any] = OrderedDict()
        self._lock = asyncio.Lock()

    async def client(self, target: Target) -> Any:
        """The filesystem of ``target``: built once, then reused."""
        key = target.client_key
        found = self._clients.get(key)
        if found is not None:
            self._clients.move_to_end(key)
            return found
        async with self._lock:
            found = self._clients.get(key)
            if found is None:
                found = await asyncio.to_thread(build_filesystem, target, self.settings)
                self._clients[key] = found
                while len(self._clients) > self.settings.max_cached_clients:
                    _, oldest = self._clients.popitem(last=False)
                    await close_filesystem(oldest)
            return found

    def __len__(self) -> int:
        return len(self._clients)

    async def aclose(self) -> None:
        """Close every client (shutdown)."""
        clients = list(self._clients.values())
        self._clients.clear()
        for fs in clients:
            await close_filesystem(fs)


async def close_filesystem(fs: Any) -> None:
    """Close the connections of one client; failures are logged, never raised."""
    closers: list[Callable[[], Awaitable[Any] | Any]] = []
    creator = getattr(fs, "_s3creator", None)  # s3fs
    if creator is not None:
        closers.append(lambda: creator.__aexit__(None, None, None))
    session = getattr(fs, "_session", None)  # gcsfs (aiohttp)
    if session is not None and not getattr(session, "closed", True):
        closers.append(session.close)
    service = getattr(fs, "service_client", None)  # adlfs
    if service is not None:
        closers.append(service.close)
    credential = getattr(fs, "credential", None)
    if credential is not None and hasattr(credential, "close"):
        closers.append(credential.close)

    async def close_all() -> None:
        for closer in closers:
            try:
                result = closer()
                if inspect.isawaitable(result):
                    await result
            except Exception:  # closing is best effort: the process may be exiting anyway
                log.debug("closing a cloud storage client failed", exc_info=True)

    if closers:
        try:
            await asyncio.wait_for(run(fs, close_all()), 10)
        except (TimeoutError, RuntimeError):
            log.debug("closing a cloud storage client timed out", exc_info=True)
