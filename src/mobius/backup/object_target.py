"""Where a snapshot may be restored in object storage: `s3://bucket/prefix`, read with the URL's own parser,
refused when the restore could reach what the workspace depends on.

A restore into a prefix deletes every object below it that the snapshot lacks, so the prefix is a
boundary as a folder is, compared by whole key parts (`lib` and `library` do not overlap). It is refused
when it holds or sits inside the snapshot repository (MOBIUS_BACKUP_DIR=s3://...), or holds or sits inside
the live library without being it (a restore would delete the library's objects, or put a library
inside the library). The live library itself is a target, as the library folder is for a folder
restore: the command asks first, and keeps the library's current content as a snapshot before it writes.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from mobius.backup.member_rules import name_problem
from mobius.config import Workspace, is_url, mask_text
from mobius.errors import InputError

SCHEME = "s3"
HINT = "give --to s3://bucket/prefix (or a folder)"


@dataclass(frozen=True)
class ObjectTarget:
    """A checked restore target: `url` normalised to s3://bucket[/prefix] (no trailing slash)."""

    url: str
    bucket: str
    prefix: str
    is_library: bool

    @property
    def parts(self) -> tuple[str, ...]:
        return (self.bucket, *(p for p in self.prefix.split("/") if p))


def names_object_storage(text: str) -> bool:
    """True when `--to` means a URL (s3://..., or any other scheme://, or a mistyped `s3:/...`), not a folder."""
    return is_url(text) or text.lower().startswith(f"{SCHEME}:")


def parse_object_url(text: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://bucket/prefix`; anything else is one clear InputError (exit 1)."""
    shown = mask_text(text)
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InputError(f"--to {shown!r}: control characters in the URL", hint=HINT)
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InputError(f"--to {shown}: not a URL ({exc})", hint=HINT) from None
    if parts.scheme.lower() != SCHEME or not text.lower().startswith(f"{SCHEME}://"):
        raise InputError(f"--to {shown}: only s3:// URLs can be restored into", hint=HINT)
    if parts.username is not None or parts.password is not None or port is not None:
        raise InputError(f"--to {shown}: credentials or a port in the URL are not read",
                         hint="give the endpoint in MOBIUS_S3_ENDPOINT_URL and credentials through the AWS chain")
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise InputError(f"--to {shown}: a query or fragment is not part of an S3 location", hint=HINT)
    from botocore.handlers import VALID_BUCKET  # the bucket names botocore accepts; here: 0.18 s to import

    bucket = parts.netloc
    if not bucket:
        raise InputError(f"--to {shown}: no bucket", hint=HINT)
    if not VALID_BUCKET.match(bucket):
        raise InputError(f"--to {shown}: {bucket!r} is not a bucket name", hint=HINT)
    prefix = parts.path.strip("/")
    if prefix and (name_problem(prefix) or any(p in ("", ".") for p in prefix.split("/"))):
        raise InputError(f"--to {shown}: the prefix {prefix!r} has empty, '.' or '..' parts",
                         hint="objects below it could not be named as files")
    return bucket, prefix


def _parts(url: str) -> tuple[str, ...]:
    bucket, prefix = parse_object_url(url)
    return (bucket, *(p for p in prefix.split("/") if p))


def _inside(inner: tuple[str, ...], outer: tuple[str, ...]) -> bool:
    return inner[:len(outer)] == outer


def check_object_target(ws: Workspace, text: str) -> ObjectTarget:
    """The target `text` names, refused (exit 1) when it overlaps the repository or nests with the library."""
    bucket, prefix = parse_object_url(text)
    url = f"{SCHEME}://{bucket}" + (f"/{prefix}" if prefix else "")
    target = (bucket, *prefix.split("/")) if prefix else (bucket,)
    repository = ws.backup_repository_url
    if repository is not None:
        held = _parts(repository)
        if _inside(target, held) or _inside(held, target):
            raise InputError(f"refusing to restore into {url}: it overlaps the snapshot repository {repository}",
                             hint="restore into a prefix outside MOBIUS_BACKUP_DIR")
    is_library = False
    if is_url(ws.library) and ws.library.lower().startswith(f"{SCHEME}://"):
        library = _parts(ws.library)
        is_library = target == library
        if not is_library and (_inside(target, library) or _inside(library, target)):
            raise InputError(f"refusing to restore into {url}: it is nested with the live library {ws.library}",
                             hint="restore into the library itself (--to MOBIUS_LIBRARY_DIR) or a prefix apart")
    if not prefix and not is_library:
        raise InputError(f"refusing to restore into the whole bucket {bucket}: a restore deletes every object "
                         "below its target that the snapshot lacks", hint="give a prefix: s3://bucket/prefix")
    return ObjectTarget(url, bucket, prefix, is_library)


__all__ = ["ObjectTarget", "check_object_target", "names_object_storage", "parse_object_url"]
