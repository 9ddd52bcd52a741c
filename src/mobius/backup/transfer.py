"""Pack uploads and downloads, several at once, through the project's executor (#22 item 7).

A pack is one task: an upload puts the local file under its key, then reads it back whole from
the store and checks its sha256 against the pack's name and its size (so an upload that finished
OK left the pack whole and checked in the store); a download fetches the key into a local file
atomically (temp, fsync, rename) and leaves the checking to its readers (verify --read-data,
restore), which check every blob against its sha256 and name the files a damaged byte affects.
Both are idempotent (same name, same bytes), whichever worker runs them and however often.

Tasks run on the executor the settings choose (MOBIUS_EXECUTOR: a local thread pool by default,
or Dask); their results are the same byte for byte. Items carry only the store's URL, its
storage options (endpoint and timeouts: no secret; credentials come from each worker's AWS
chain, as for the media uploads) and the local path, so a Dask worker rebuilds the store itself;
the local packs must be reachable from every worker (checked first, exit 3 when not).
Memory stays bounded: each running task streams one pack in chunks of the store's READ_CHUNK;
waiting tasks are only their descriptions.

Without a workspace (the library called directly) the transfers run one after the other in the
calling thread, through the same task function.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobius.backup.store import FolderStore, ObjectStore, RepositoryStore
from mobius.errors import VerificationError
from mobius.faults import kill_at

TRANSFERS = 8  # packs in flight at once on a local pool (I/O bound: threads wait on the network)
PUT, GET = "put", "get"


@dataclass(frozen=True)
class PackTransfer:
    """One pack to move: `put` local -> key, or `get` key -> local; `name` (its sha256) and `size` checked."""

    op: str
    url: str
    options: tuple[tuple[str, Any], ...]  # the store's storage options, hashable and picklable
    key: str
    local: str
    name: str
    size: int


def store_of(store: RepositoryStore) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """What a task needs to open `store` again where it runs."""
    options = getattr(store, "options", {}) or {}
    return store.url, tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in options.items()))


_opened: dict[tuple, RepositoryStore] = {}
_opening = threading.Lock()


def _open(url: str, options: tuple[tuple[str, Any], ...]) -> RepositoryStore:
    """The store for `url`, opened once per worker process (an S3 client costs a connection and a request)."""
    with _opening:
        store = _opened.get((url, options))
        if store is None:
            if url.startswith("s3://"):
                store = ObjectStore(url, {k: json.loads(v) for k, v in options})
            else:
                store = FolderStore(Path(url))
            _opened[(url, options)] = store
        return store


def transfer_pack(ws: object, item: PackTransfer) -> str:
    """Run one transfer where it lands; VerificationError (not retried) when the pack does not check."""
    store = _open(item.url, item.options)
    if item.op == PUT:
        store.put_file(item.key, Path(item.local))
        kill_at("copy:pack-put")
        digest = hashlib.sha256()
        got = 0
        for chunk in store.read(item.key):
            digest.update(chunk)
            got += len(chunk)
        sha = digest.hexdigest()
        if (sha, got) != (item.name, item.size):
            raise VerificationError(f"copy: pack {item.name} reads back from {item.url} as {got} bytes with sha256 "
                                    f"{sha}", hint="check the target; run the command again")
        kill_at("copy:pack-checked")
        return item.name
    store.get_file(item.key, Path(item.local))  # whole or absent; its blobs are checked as they are read
    return item.name


class Transfers:
    """Runs pack transfers on the executor of `ws` (inline without one); yields each pack's name as it is done.
    `executor`: an executor the caller opened, or a kind ("local", "dask"); default the settings' choice."""

    def __init__(self, ws: Any = None, executor: Any = None):
        self.ws = ws
        self.executor = executor

    def run(self, store: RepositoryStore, items: Sequence[PackTransfer], reach: Sequence[Path] = ()
            ) -> Iterator[str]:
        """Each item's pack name as its transfer finishes and checks; the first failure raises (the others are
        cancelled): what finished stays where it is, whole and checked."""
        if not items:
            return
        with _opening:  # this process's tasks use the caller's store (one client, one connection pool)
            _opened.setdefault(store_of(store), store)
        if self.ws is None or len(items) == 1:
            for item in items:
                yield transfer_pack(None, item)
            return
        yield from self._on_executor(items, reach)

    def _on_executor(self, items: Sequence[PackTransfer], reach: Sequence[Path]) -> Iterator[str]:
        from mobius.executor import Item, portable_workspace

        with self._executor() as executor:
            executor.ensure_reachable([p for p in dict.fromkeys(reach) if Path(p).is_dir()])
            keyed = [Item(f"{item.op} {item.name}", item) for item in items]
            try:
                for outcome in executor.results(transfer_pack, portable_workspace(self.ws), keyed):
                    if not outcome.ok:
                        raise VerificationError(f"{outcome.key}: {outcome.error}",
                                                hint="check the repository and the network; run the command again")
                    yield outcome.value
            except BaseException:
                executor.cancel()
                raise

    @contextlib.contextmanager
    def _executor(self) -> Iterator[Any]:
        """The caller's executor as is, or one opened (threads: the work waits on the network) and closed."""
        if self.executor is not None and not isinstance(self.executor, str):
            yield self.executor
            return
        from mobius.executor import open_executor

        with open_executor(self.ws, self.executor, cpu_bound=False,
                           workers=self.ws.settings.executor_workers or TRANSFERS) as executor:
            yield executor
