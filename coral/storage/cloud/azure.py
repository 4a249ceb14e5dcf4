"""Azure Blob Storage (and Azurite) through adlfs.

Credentials, explicit options first: `connection_string`; else an account (`account_name`, or
`account_url` for another endpoint such as Azurite) with `account_key`, `sas_token` or
`credential`; else AZURE_STORAGE_CONNECTION_STRING; else AZURE_STORAGE_ACCOUNT_NAME with
AZURE_STORAGE_ACCOUNT_KEY / AZURE_STORAGE_SAS_TOKEN or, without either, DefaultAzureCredential.
Puts go through azure-storage-blob's `upload_blob`: CREATE is `overwrite=False`
(`If-None-Match: *`), IF_MATCH `etag=..., match_condition=IfNotModified` (`If-Match`); the etag
is the blob's ETag without quotes, new for every write. The SDK's own retries are off
(`RetryingBackend` retries).
"""

from __future__ import annotations

import os
from typing import Any

from adlfs import AzureBlobFileSystem
from fsspec.asyn import sync

from coral.storage.backend import BackendError, Capabilities, ObjectInfo, PutMode
from coral.storage.cloud.common import (
    Failure,
    as_timestamp,
    etag_is_sendable,
    plain_etag,
    public_url,
    reason,
)
from coral.storage.cloud.fsspec_backend import FsspecBackend


class _AzureFileSystem(AzureBlobFileSystem):
    """adlfs over a service client built here (timeouts, no SDK retries)."""

    def __init__(self, make_client: Any, **kwargs: Any) -> None:
        self._make_client = make_client
        super().__init__(**kwargs)

    def do_connect(self) -> None:
        self.service_client = self._make_client()


class AzureBackend(FsspecBackend):
    """Objects under `az://container/prefix`."""

    capabilities = Capabilities(atomic_create=True, conditional_put=True)
    container_word = "container"

    def __init__(
        self,
        container: str,
        prefix: str = "",
        *,
        connection_string: str | None = None,
        account_name: str | None = None,
        account_key: str | None = None,
        sas_token: str | None = None,
        account_url: str | None = None,
        credential: Any = None,
        connection_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> None:
        from azure.storage.blob.aio import BlobServiceClient

        env = os.environ.get
        client_options: dict[str, Any] = {
            "retry_total": 0,
            "connection_timeout": connection_timeout,
            "read_timeout": read_timeout,
        }
        explicit_account = any((account_name, account_key, sas_token, account_url, credential))
        if not connection_string and not explicit_account:
            connection_string = env("AZURE_STORAGE_CONNECTION_STRING") or None
        async_credential = None
        if connection_string:
            conn = connection_string

            def make_client() -> Any:
                return BlobServiceClient.from_connection_string(conn, **client_options)

            secrets = [connection_string, *_connection_secrets(connection_string)]
        else:
            account_name = account_name or env("AZURE_STORAGE_ACCOUNT_NAME") or None
            if not account_name and not account_url:
                raise BackendError(
                    f"no Azure storage account for az://{container}",
                    hint="set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME "
                    "(with AZURE_STORAGE_ACCOUNT_KEY, a SAS token or an Azure login)",
                )
            url = account_url or f"https://{account_name}.blob.core.windows.net"
            if credential is None and not sas_token:
                account_key = account_key or env("AZURE_STORAGE_ACCOUNT_KEY") or None
                sas_token = None if account_key else env("AZURE_STORAGE_SAS_TOKEN") or None
            if credential is None and account_key:
                from azure.core.credentials import AzureNamedKeyCredential

                name = account_name or public_url(url).rstrip("/").rsplit("/", 1)[-1]
                credential = AzureNamedKeyCredential(name, account_key)
            elif credential is None and sas_token:
                from azure.core.credentials import AzureSasCredential

                credential = AzureSasCredential(sas_token.lstrip("?"))
            elif credential is None:
                from azure.identity.aio import DefaultAzureCredential

                credential = async_credential = DefaultAzureCredential()
            cred = credential

            def make_client() -> Any:
                return BlobServiceClient(url, credential=cred, **client_options)

            secrets = [s for s in (account_key, sas_token) if s]
        try:
            fs = _AzureFileSystem(
                make_client,
                anon=True,  # keeps adlfs from building credentials of its own
                credential=async_credential,  # closed with the filesystem
                skip_instance_cache=True,
                use_listings_cache=False,
            )
        except Exception as exc:  # e.g. a malformed connection string
            raise BackendError(
                f"cannot use the Azure credentials for az://{container}: {reason(exc, secrets)}",
                hint=self.auth_hint,
            ) from None
        self.endpoint_url = public_url(fs.service_client.url)
        self.prefix = prefix.strip("/")
        where = f"az://{container}/{self.prefix}".rstrip("/") + f" at {self.endpoint_url}"
        super().__init__(
            fs,
            f"{container}/{self.prefix}" if self.prefix else container,
            description=where,
            secrets=secrets,
        )

    def endpoint(self) -> str:
        return self.endpoint_url

    def create_hint(self) -> str:
        return (
            f"create it with `az storage container create --name {self.container}` "
            "(with --connection-string or --account-name), or check the name"
        )

    auth_hint = (
        "check the credentials (AZURE_STORAGE_CONNECTION_STRING, the account key or SAS token, "
        "or `az login`) and that they may use this container"
    )

    def _put(
        self, path: str, key: str, data: bytes, mode: PutMode, if_match: str | None
    ) -> ObjectInfo:
        from azure.core import MatchConditions

        options: dict[str, Any] = {"overwrite": True}
        if mode is PutMode.CREATE:
            options = {"overwrite": False}  # If-None-Match: *
        elif mode is PutMode.IF_MATCH:
            assert if_match is not None
            if not etag_is_sendable(if_match):
                self._precondition(key, mode)
            options["etag"] = f'"{if_match}"'
            options["match_condition"] = MatchConditions.IfNotModified  # If-Match
        _, _, blob = path.partition("/")

        async def upload() -> Any:
            client = self.fs.service_client.get_blob_client(self.container, blob)
            return await client.upload_blob(data, **options)

        out = sync(self.fs.loop, upload)
        return ObjectInfo(
            key, len(data), plain_etag(out["etag"]), as_timestamp(out.get("last_modified"))
        )

    def _object_info(self, key: str, info: dict[str, Any]) -> ObjectInfo:
        return ObjectInfo(
            key,
            int(info.get("size") or 0),
            plain_etag(info.get("etag", "")),
            as_timestamp(info.get("last_modified")),
        )

    def _container_exists(self) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        async def check() -> None:
            client = self.fs.service_client.get_container_client(self.container)
            await client.get_container_properties()

        try:
            sync(self.fs.loop, check)
        except ResourceNotFoundError:
            return False
        return True

    def _classify(self, exc: BaseException) -> Failure:
        from azure.core import exceptions as az

        cause = exc.__cause__ if isinstance(exc, FileNotFoundError) else exc
        if isinstance(cause, az.HttpResponseError):
            code = str(getattr(cause, "error_code", "") or "")
            status = int(cause.status_code or 0)
            if code == "ContainerNotFound":
                return Failure.NO_CONTAINER
            if isinstance(cause, az.ResourceNotFoundError) or status == 404:
                return Failure.MISSING
            if isinstance(cause, az.ResourceExistsError | az.ResourceModifiedError):
                return Failure.PRECONDITION  # BlobAlreadyExists (409), ConditionNotMet (412)
            if status == 412:
                return Failure.PRECONDITION
            if code == "InvalidRange" or status == 416:
                return Failure.BAD_RANGE
            if isinstance(cause, az.ClientAuthenticationError) or status in (401, 403):
                return Failure.AUTH
            if status in (408, 429) or status >= 500:
                return Failure.TRANSIENT
            return Failure.OTHER
        if isinstance(exc, az.ClientAuthenticationError):
            return Failure.AUTH
        if isinstance(exc, az.ServiceRequestError | az.ServiceResponseError):
            return Failure.TRANSIENT  # could not connect / the connection broke
        try:
            from azure.identity import CredentialUnavailableError
        except ImportError:  # pragma: no cover - azure-identity comes with adlfs
            pass
        else:
            if isinstance(exc, CredentialUnavailableError):
                return Failure.AUTH
        return super()._classify(exc)


def _connection_secrets(connection_string: str) -> list[str]:
    """The AccountKey and SharedAccessSignature values of a connection string."""
    secrets = []
    for part in connection_string.split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() in ("accountkey", "sharedaccesssignature") and value:
            secrets.append(value.strip())
    return secrets
