"""Object storage (s3://bucket/prefix) as migration destination, through fsspec/s3fs.

A PUT is atomic (a multipart upload appears only when completed), so there is no temp name:
an object becomes visible whole, is re-read with a GET to verify, and is deleted again when the
check fails. Object stores keep no mode, mtime, folders or symlinks: mode and mtime are kept in
the migration journal, empty folders only in the journal, and symlinks are refused up front.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable

from mobius.errors import EnvironmentProblem, InputError, MobiusError
from mobius.media.destination import Stored
from mobius.safety.tree import DIR, FILE

READ_BLOCK = 8 << 20


def _etag(info: dict) -> str:
    return str(info.get("ETag") or info.get("etag") or "").strip('"')


class FsspecWriter:
    def __init__(self, fs, key: str, rel: str):
        self.fs = fs
        self.key = key
        self.rel = rel
        self.handle = fs.open(key, "wb")
        self.sealed = False

    def write(self, data: memoryview) -> None:
        self.handle.write(data)

    def seal(self, mode: int, mtime_ns: int) -> None:
        self.handle.close()
        self.sealed = True

    def read_back(self, on_bytes: Callable[[int], None] | None = None) -> str:
        return _read_hash(self.fs, self.key, on_bytes)

    def publish(self) -> Stored:
        info = self.fs.info(self.key)
        return Stored(self.rel, FILE, int(info["size"]), _etag(info))

    def abort(self) -> None:
        if not self.sealed:
            with contextlib.suppress(Exception):
                self.handle.discard()
        else:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.key)


def _read_hash(fs, key: str, on_bytes: Callable[[int], None] | None) -> str:
    digest = hashlib.sha256()
    with fs.open(key, "rb", block_size=READ_BLOCK, cache_type="none") as handle:
        while True:
            block = handle.read(READ_BLOCK)
            if not block:
                break
            digest.update(block)
            if on_bytes:
                on_bytes(len(block))
    return digest.hexdigest()


class FsspecDestination:
    kind = "s3"
    supports_links = False

    def __init__(self, url: str, storage_options: dict[str, object]):
        import fsspec

        self.url = url.rstrip("/")
        self.fs = fsspec.filesystem("s3", **storage_options)
        self.root = self.url.split("://", 1)[1]
        self.bucket = self.root.split("/", 1)[0]

    def _key(self, path: str) -> str:
        return f"{self.root}/{path}"

    def exists(self) -> bool:
        return bool(self.listing())

    def _unreachable(self, exc: Exception) -> EnvironmentProblem:
        return EnvironmentProblem(f"cannot use {self.url}: {type(exc).__name__}: {exc}",
                                  hint="check MOBIUS_S3_ENDPOINT_URL, the AWS credentials and the network")

    def listing(self) -> dict[str, Stored]:
        try:
            found = self.fs.find(self.root, detail=True, withdirs=False)
        except FileNotFoundError:
            raise InputError(f"bucket {self.bucket} does not exist at the S3 endpoint",
                             hint="create the bucket first, or check MOBIUS_S3_ENDPOINT_URL") from None
        except MobiusError:
            raise
        except Exception as exc:  # noqa: BLE001 - botocore/aiohttp errors: no credentials, no endpoint
            raise self._unreachable(exc) from None
        prefix = self.root + "/"
        out: dict[str, Stored] = {}
        for key, info in found.items():
            if not key.startswith(prefix) or info.get("type") == "directory":
                continue
            rel = key[len(prefix):]
            out[rel] = Stored(rel, FILE, int(info["size"]), _etag(info))
        return out

    def remove_temps(self) -> int:
        return 0

    def prepare(self) -> str:
        try:
            exists = self.fs.exists(self.bucket)
        except Exception as exc:  # noqa: BLE001 - see listing
            raise self._unreachable(exc) from None
        if not exists:
            raise InputError(f"bucket {self.bucket} does not exist at the S3 endpoint",
                             hint="create the bucket first, or check MOBIUS_S3_ENDPOINT_URL and credentials")
        probe = self._key(".mobius-write-probe")
        try:
            self.fs.pipe_file(probe, b"mobius")
            self.fs.rm_file(probe)
        except Exception as exc:  # noqa: BLE001 - e.g. AccessDenied
            raise self._unreachable(exc) from None
        return "bucket exists, writable (probe object written and removed); object stores keep no mode"

    def space(self) -> tuple[int, int] | None:
        return None

    def make_dir(self, path: str, mode: int) -> Stored:
        return Stored(path, DIR)

    def make_link(self, path: str, target: str) -> Stored:
        raise InputError(f"cannot store symlink {path} in object storage", hint="replace it by a file first")

    def writer(self, path: str) -> FsspecWriter:
        return FsspecWriter(self.fs, self._key(path), path)

    def read(self, path: str, on_bytes: Callable[[int], None] | None = None) -> str:
        return _read_hash(self.fs, self._key(path), on_bytes)

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._key(path))

    def sync(self, paths: set[str]) -> None:
        """Nothing to do: a completed PUT is durable."""
