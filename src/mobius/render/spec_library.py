"""The library as the pipeline test reads it: a local folder, or, for a library in object storage (s3://), only
the objects the specs name, fetched into the test's scratch folder.

A spec names its assets (component images) by their path in the library, so a self-test needs those files
and nothing else: for an s3:// library each one is streamed to `<scratch>/<path>` (never the whole library,
never more than one asset's chunk in memory), and the checks then run unchanged on that folder: a
missing object is a missing asset, a recorded sha256 is checked against the bytes fetched, and the proxy
renders from them. Messages name the object (`s3://bucket/prefix/<path>`), not the scratch copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mobius.config import Workspace, is_url
from mobius.errors import EnvironmentProblem, InputError, MobiusError
from mobius.log import get_logger

CHUNK = 4 << 20


@dataclass
class SpecLibrary:
    """Where the specs' assets are read (`folder`; None: the library could not be read, each game says why) and
    how messages name that place (`name`: the folder, or the library's URL)."""

    folder: Path | None
    name: str
    fetched: int = 0
    bytes: int = 0

    def shown(self, path: Path) -> str:
        """`path` (inside `folder`) as the library names it."""
        if self.folder is None or self.name == str(self.folder):
            return str(path)
        try:
            return f"{self.name}/{path.relative_to(self.folder).as_posix()}"
        except ValueError:
            return str(path)


def spec_library(ws: Workspace, spec_files: list[Path], scratch: Path) -> SpecLibrary:
    """The library the specs are checked against: the local folder itself, or their assets fetched from s3://
    into `scratch` (which the caller removes)."""
    if not is_url(ws.library):
        try:
            folder = ws.library_path
        except MobiusError:
            return SpecLibrary(None, ws.library)
        return SpecLibrary(folder, str(folder))
    return _fetched(ws, _asset_paths(spec_files), scratch)


def _asset_paths(spec_files: list[Path]) -> list[str]:
    """Every component image the specs name (relative, no '..': the spec's own rule), once each; a spec that does
    not load names none here (its check reports why)."""
    from mobius.render.spec import load_spec

    paths: dict[str, None] = {}
    for spec_file in spec_files:
        try:
            spec = load_spec(spec_file)
        except MobiusError:
            continue
        for component in spec.components:
            paths.setdefault(Path(component.image).as_posix())
    return list(paths)


def _fetched(ws: Workspace, paths: list[str], scratch: Path) -> SpecLibrary:
    from mobius.media.destination import s3_storage_options  # the one reading of the S3 endpoint settings

    url = ws.library.rstrip("/")
    try:
        import fsspec
        import s3fs  # noqa: F401 - only to know whether the extra is installed
    except ImportError:
        raise EnvironmentProblem(f"the pipeline test of a library in {url} needs the s3fs package",
                                 hint="pip install s3fs") from None
    fs = fsspec.filesystem("s3", **s3_storage_options(ws))
    base = url.split("://", 1)[1]
    library = SpecLibrary(scratch, url)
    scratch.mkdir(parents=True, exist_ok=True)
    for rel in paths:
        dest = scratch / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with fs.open(f"{base}/{rel}", "rb", block_size=CHUNK) as source, open(dest, "wb") as out:
                while chunk := source.read(CHUNK):
                    out.write(chunk)
                    library.bytes += len(chunk)
        except FileNotFoundError:
            dest.unlink(missing_ok=True)  # reported as a missing asset by the check
            continue
        except Exception as exc:  # noqa: BLE001 - botocore/aiohttp: no endpoint, no credentials, no bucket
            raise InputError(f"cannot read {url}/{rel}: {exc}",
                             hint="check MOBIUS_LIBRARY_DIR, MOBIUS_S3_ENDPOINT_URL and the AWS credentials") from None
        library.fetched += 1
    get_logger().info("pipeline.assets_fetched", library=url, objects=library.fetched, bytes=library.bytes,
                      named=len(paths))
    return library


__all__ = ["SpecLibrary", "spec_library"]
