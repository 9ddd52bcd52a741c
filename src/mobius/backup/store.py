"""Where a repository copy goes: a local folder or an object store (s3://bucket/prefix, through object_client's
small S3 client where it applies, else botocore's).

One small interface, the operations `copy` needs: list the names under a folder, the size of a
name, put a local file under a name so that it is either absent or whole (a folder: temp name,
fsync, rename, fsync; S3: a PUT is atomic per object), read a name back in pieces (to check it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from mobius.errors import EnvironmentProblem, InputError
from mobius.safety.atomic import TEMP_PREFIX, atomic_write

READ_CHUNK = 4 << 20
MULTIPART = 256 << 20  # objects above this go up in parts (a single PUT stops at 5 GiB)
PART = 16 << 20  # bytes of a part in memory, per running upload


class RepositoryStore(Protocol):
    url: str

    def names(self, folder: str) -> set[str]:
        """File names (not paths) directly under `folder` ('index', 'snapshots', 'packs/ab')."""
        ...

    def size(self, key: str) -> int | None: ...

    def put_file(self, key: str, local: Path) -> None: ...

    def read(self, key: str) -> Iterator[bytes]: ...

    def sizes(self, folder: str) -> dict[str, int]:
        """Every file under `folder`, at any depth: its name and size, in one listing."""
        ...

    def local_root(self) -> Path | None:
        """The folder, when the store is one (then the copy is a repository every command opens)."""
        ...


class FolderStore:
    def __init__(self, root: Path):
        self.root = root
        self.url = str(root)

    def names(self, folder: str) -> set[str]:
        path = self.root / folder
        if not path.is_dir():
            return set()
        return {name for name in os.listdir(path) if not name.startswith(TEMP_PREFIX)}

    def size(self, key: str) -> int | None:
        try:
            return (self.root / key).stat().st_size
        except FileNotFoundError:
            return None

    def put_file(self, key: str, local: Path) -> None:
        final = self.root / key
        final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(local, "rb") as src, atomic_write(final, file_mode=0o600) as out:
            shutil.copyfileobj(src, out, READ_CHUNK)

    def read(self, key: str) -> Iterator[bytes]:
        with open(self.root / key, "rb") as handle:
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            while chunk := handle.read(READ_CHUNK):
                yield chunk

    def local_root(self) -> Path | None:
        return self.root

    def sizes(self, folder: str) -> dict[str, int]:
        found: dict[str, int] = {}
        for parent, _, names in os.walk(self.root / folder):
            for name in names:
                if not name.startswith(TEMP_PREFIX):
                    with contextlib.suppress(FileNotFoundError):
                        found[name] = os.stat(os.path.join(parent, name)).st_size
        return found


class ObjectStore:
    """s3://bucket/prefix; endpoint and timeouts as the media capability reads them (fsspec-style storage
    options), credentials from the usual AWS chain.

    Not through fsspec/s3fs, for a measured reason: every command on an s3:// repository paid s3fs's start-up
    (importing s3fs, aiobotocore and aiohttp, then its first request), 1.1-1.4 s and 67 MB against botocore's
    0.25-0.5 s and 46 MB on this machine. With an explicit endpoint and credentials in the environment, not
    through botocore either (object_client: botocore's import and client were 0.25-0.35 s of CPU a command).
    Every store of a process shares one client (`_shared_client`; both clients are thread-safe: the executor's
    threads use it)."""

    def __init__(self, url: str, storage_options: dict[str, object]):
        self.url = url.rstrip("/")
        self.options = dict(storage_options)  # no secret in them (credentials come from the AWS chain)
        self.bucket, _, prefix = self.url[len("s3://"):].partition("/")
        self.prefix = prefix.strip("/")
        self.base = self.url[len("s3://"):]
        self._client, self._client_error = _shared_client(self.url, self.bucket, storage_options)
        self.page_keys: int | None = None  # keys per listing page: the server's (1,000 on S3) unless set

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _path(self, key: str) -> str:
        return f"{self.base}/{key}"

    def _pages(self, prefix: str, delimiter: str | None) -> Iterator[dict]:
        args: dict[str, object] = {"Bucket": self.bucket, "Prefix": prefix,
                                   **({"Delimiter": delimiter} if delimiter else {}),
                                   **({"MaxKeys": self.page_keys} if self.page_keys else {})}
        while True:
            page = self._client.list_objects_v2(**args)
            yield page
            if not page.get("IsTruncated") or not page.get("NextContinuationToken"):
                return
            args["ContinuationToken"] = page["NextContinuationToken"]

    def names(self, folder: str) -> set[str]:
        prefix = self._key(folder).rstrip("/") + "/"
        found: set[str] = set()
        for page in self._pages(prefix, "/"):
            found.update(item["Key"][len(prefix):] for item in page.get("Contents", []))
            found.update(item["Prefix"][len(prefix):].rstrip("/") for item in page.get("CommonPrefixes", []))
        found.discard("")
        return found

    def size(self, key: str) -> int | None:
        try:
            return int(self._client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])
        except self._client_error as exc:
            if _status(exc) == 404:
                return None
            raise

    def put_file(self, key: str, local: Path) -> None:
        """One PUT (atomic per object) streamed from the file; above MULTIPART, a multipart upload in PART-sized
        parts (completed only when every part is in: until then no object appears under `key`)."""
        size = local.stat().st_size
        if size <= MULTIPART:
            with open(local, "rb") as body:
                self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=body)
            return
        upload = self._client.create_multipart_upload(Bucket=self.bucket, Key=self._key(key))["UploadId"]
        try:
            parts = []
            with open(local, "rb") as handle:
                number = 1
                while chunk := handle.read(PART):
                    sent = self._client.upload_part(Bucket=self.bucket, Key=self._key(key), UploadId=upload,
                                                    PartNumber=number, Body=chunk)
                    parts.append({"PartNumber": number, "ETag": sent["ETag"]})
                    number += 1
            self._client.complete_multipart_upload(Bucket=self.bucket, Key=self._key(key), UploadId=upload,
                                                   MultipartUpload={"Parts": parts})
        except BaseException:
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=self._key(key), UploadId=upload)
            raise

    def read(self, key: str) -> Iterator[bytes]:
        body = self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        try:
            yield from body.iter_chunks(READ_CHUNK)
        finally:
            body.close()

    def local_root(self) -> Path | None:
        return None

    def sizes(self, folder: str) -> dict[str, int]:
        """Every object under `folder`, at any depth: its name (not key) and size, in one listing."""
        prefix = self._key(folder).rstrip("/") + "/"
        return {item["Key"].rsplit("/", 1)[-1]: int(item["Size"])
                for page in self._pages(prefix, None) for item in page.get("Contents", [])}

    def put_bytes(self, key: str, data: bytes) -> None:
        self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def read_bytes(self, key: str) -> bytes | None:
        try:
            return b"".join(self.read(key))
        except self._client_error as exc:
            if _status(exc) == 404:
                return None
            raise

    def get_file(self, key: str, local: Path) -> None:
        """The object into `local` atomically (temp name in the same folder, fsync, rename)."""
        local.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with atomic_write(local, file_mode=0o600) as out:
            for chunk in self.read(key):
                out.write(chunk)

    def delete(self, key: str) -> None:
        """Remove the object; an absent one is not an error (a second prune may have removed it)."""
        self._client.delete_object(Bucket=self.bucket, Key=self._key(key))


_clients: dict[str, tuple[object, type[Exception]]] = {}
_reached: set[tuple[str, str]] = set()
_clients_lock = threading.Lock()


def _forget_clients() -> None:
    """In a forked child: no client of the parent's (its pooled sockets are the parent's), and a lock no thread
    of the parent can be holding."""
    global _clients_lock
    _clients.clear()
    _reached.clear()
    _clients_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_clients)


def _shared_client(url: str, bucket: str, storage_options: dict[str, object]) -> tuple[object, type[Exception]]:
    """The process's S3 client for these options (and its error class), made on first use, with
    `bucket` checked reachable once (HEAD) the first time a store names it.

    One client per process, not per store: a command opens its repository's store several times (the
    command, its step's check, the transfer tasks), and each new session paid 0.1-0.2 s of CPU to load
    botocore's models again, plus a HEAD. A botocore client is thread-safe; a forked child makes its own
    (`_forget_clients`). The key holds the endpoint and client settings and a digest of the AWS_*
    environment (the credential chain reads it when the client is made)."""
    environment = sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))
    key = hashlib.sha256(json.dumps([storage_options.get("endpoint_url"),
                                     storage_options.get("config_kwargs"), environment],
                                    sort_keys=True, default=str).encode()).hexdigest()
    with _clients_lock:
        made = _clients.get(key)
        if made is None:
            made = _clients[key] = _make_client(storage_options)
        if (key, bucket) not in _reached:
            _reach(made[0], url, bucket, made[1])
            _reached.add((key, bucket))
    return made


def _make_client(storage_options: dict[str, object]) -> tuple[object, type[Exception]]:
    """object_client's S3 client where it answers as botocore's would (an explicit endpoint, credentials in the
    environment: see that module), else botocore's client."""
    from mobius.backup import object_client

    fast = object_client.for_options(storage_options, os.environ)
    if fast is not None:
        return fast, object_client.S3Error
    try:
        import botocore.session
        from botocore.config import Config
        from botocore.exceptions import ClientError
    except ImportError:
        raise EnvironmentProblem("an s3:// repository needs the s3fs package (and its botocore)",
                                 hint="pip install s3fs") from None
    config = dict(storage_options.get("config_kwargs") or {})  # type: ignore[call-overload]
    config.setdefault("max_pool_connections", 16)  # the executor's threads share the client
    session = botocore.session.get_session()
    session.register_component("data_loader", _s3_model_loader(session.get_config_variable("data_path")))
    client = session.create_client("s3", endpoint_url=storage_options.get("endpoint_url"),
                                   config=Config(**config))
    return client, ClientError


def _s3_model_loader(data_path: str | None) -> object:
    """botocore's model loader (AWS_DATA_PATH honoured, as botocore.loaders.create_loader reads it) that does not
    look through every service's folder to learn that S3 is one: botocore lists ~440 folders and stats their
    files, twice per client (1,300 listdir calls: 15-80 ms warm, ~0.1 s more with the page cache dropped)."""
    from botocore.loaders import Loader

    class S3ModelLoader(Loader):
        def list_available_services(self, type_name: str) -> list[str]:
            return ["s3"]  # the only service this client loads; its models are then read as botocore reads them

    paths = [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)] if data_path else None
    return S3ModelLoader(extra_search_paths=paths)


def _reach(client, url: str, bucket: str, client_error: type[Exception]) -> None:  # noqa: ANN001 - an S3 client
    """HEAD the bucket: one clear line when it is missing or unreachable (no endpoint, no credentials)."""
    from mobius.backup.object_client import S3Client, S3Unreachable

    if isinstance(client, S3Client):
        unreachable: tuple[type[Exception], ...] = (S3Unreachable,)
    else:
        from botocore.exceptions import BotoCoreError

        unreachable = (BotoCoreError,)
    try:
        client.head_bucket(Bucket=bucket)
    except client_error as exc:
        if _status(exc) == 404:
            raise InputError(f"bucket {bucket} does not exist", hint="create it first, or fix the URL") from None
        raise InputError(f"cannot reach {url}: {exc}", hint="check MOBIUS_S3_ENDPOINT_URL and the "
                         "AWS credentials") from None
    except unreachable as exc:  # no endpoint, no credentials
        raise InputError(f"cannot reach {url}: {exc}", hint="check MOBIUS_S3_ENDPOINT_URL and the "
                         "AWS credentials") from None


def _status(exc: Exception) -> int | None:
    """The HTTP status of a botocore ClientError (404 for NoSuchKey, NoSuchBucket, a HEAD's Not Found)."""
    response = getattr(exc, "response", {}) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound"):
        return 404
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def open_store(target: str, storage_options: dict[str, object] | None = None) -> RepositoryStore:
    """A folder path or an s3:// URL."""
    if target.startswith("s3://"):
        return ObjectStore(target, storage_options or {})
    if "://" in target:
        raise InputError(f"{target}: only folders and s3:// repositories are supported", hint="e.g. s3://bucket/mobius")
    return FolderStore(Path(target).expanduser().absolute())
