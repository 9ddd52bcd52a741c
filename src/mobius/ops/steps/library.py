"""`library.hash {mode, variants, executor}` and `library.rehash {to, distance, switch, executor}`: the library's
image fingerprints (mobius.fingerprint).

Hashing only adds fingerprints of the library as it is: its undo puts back the active hash version if
the run set one, and nothing else. A rehash computes the new version beside the old one and switches in
one transaction; its undo switches back to the version active before (recorded before the work),
which the fingerprint store keeps, so nothing is recomputed.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from mobius.ops.step import StepContext, StepParams, StepPlan, register_step
from mobius.results import Report, failed, passed, skipped


def _active(ctx: StepContext) -> str | None:
    from mobius.fingerprint import status

    return status(ctx.ws).active


def _switched_back(ctx: StepContext, handle: Any, title: str) -> Report:
    """The hash version active before the step is active again (switched back when the step changed it)."""
    from mobius.fingerprint import rollback

    report = Report(title)
    if not handle or "active" not in handle:
        report.add(skipped("library.undo", "the step never started"))
        return report
    before = handle["active"]
    if before is not None and _active(ctx) != before:
        rollback(ctx.ws)
    now = _active(ctx)
    if before is None and now is not None:
        report.add(skipped("library.active.restored", f"no version was active before; {now} stays active "
                           "(its fingerprints describe the library as it is)"))
        return report
    report.add((passed if now == before else failed)("library.active.restored", now, threshold=before,
                                                     source="fingerprint store"))
    return report


class LibraryHashParams(StepParams):
    mode: str = "exact"
    variants: bool = False
    executor: str | None = None


@register_step("library.hash")
class LibraryHashStep:
    name: ClassVar[str] = "library.hash"
    Params: ClassVar[type[StepParams]] = LibraryHashParams
    probes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: dict[str, Any]):
        checked = LibraryHashParams.model_validate(params)
        self.mode, self.variants, self.executor = checked.mode, checked.variants, checked.executor

    def plan(self, ctx: StepContext) -> StepPlan:
        return StepPlan(f"hash new and changed images of {ctx.ws.library_path} ({self.mode})")

    def preflight(self, ctx: StepContext) -> Report:
        return Report("library.hash preflight", [skipped("library.hash.checks", "checked by mobius library hash")])

    def apply(self, ctx: StepContext) -> Any:
        from mobius.fingerprint import hash_library

        handle = dict(ctx.undo or {})
        if not handle:
            handle = {"active": _active(ctx)}
            ctx.record_undo(handle)
        report = hash_library(ctx.ws, mode=self.mode, workers=ctx.workers, variants=self.variants,
                              progress=ctx.progress, executor=self.executor)
        handle.update(hashed=report.hashed, failed=report.failed)
        return handle

    def verify(self, ctx: StepContext, handle: Any) -> Report:
        now = _active(ctx)
        return Report("library.hash verify", [(passed if now else failed)("library.active", now,
                                                                          source="fingerprint store")])

    def rollback(self, ctx: StepContext, handle: Any) -> Report:
        return _switched_back(ctx, handle, "library.hash rollback")


class LibraryRehashParams(StepParams):
    to: str = Field(min_length=1)  # exact, fast or a version id
    distance: int | None = None  # default: the fingerprint package's
    switch: bool = True
    executor: str | None = None


@register_step("library.rehash")
class LibraryRehashStep:
    name: ClassVar[str] = "library.rehash"
    Params: ClassVar[type[StepParams]] = LibraryRehashParams
    probes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: dict[str, Any]):
        checked = LibraryRehashParams.model_validate(params)
        self.to, self.distance, self.switch, self.executor = (checked.to, checked.distance, checked.switch,
                                                              checked.executor)

    def plan(self, ctx: StepContext) -> StepPlan:
        return StepPlan(f"compute hash version {self.to} beside the active one, compare, "
                        + ("switch" if self.switch else "do not switch"))

    def preflight(self, ctx: StepContext) -> Report:
        return Report("library.rehash preflight", [skipped("library.rehash.checks",
                                                           "checked by mobius library rehash")])

    def apply(self, ctx: StepContext) -> Any:
        from mobius.fingerprint import rehash

        handle = dict(ctx.undo or {})
        if not handle:
            handle = {"active": _active(ctx)}
            ctx.record_undo(handle)
        elif self.switch and _active(ctx) not in (handle["active"], None):
            return {**handle, "switched": True}  # the killed run switched: done
        options = {} if self.distance is None else {"distance": self.distance}
        result = rehash(ctx.ws, self.to, workers=ctx.workers, switch=self.switch, progress=ctx.progress,
                        executor=self.executor, **options)
        handle.update(new=result.new, switched=result.switched)
        return handle

    def verify(self, ctx: StepContext, handle: Any) -> Report:
        now = _active(ctx)
        wanted = handle.get("new") if handle.get("switched") else handle.get("active")
        if wanted is None:
            return Report("library.rehash verify", [passed("library.active", now, source="fingerprint store")])
        return Report("library.rehash verify", [(passed if now == wanted else failed)(
            "library.active", now, threshold=wanted, source="fingerprint store")])

    def rollback(self, ctx: StepContext, handle: Any) -> Report:
        return _switched_back(ctx, handle, "library.rehash rollback")


class LibraryRehashRollbackParams(StepParams):
    pass


@register_step("library.rehash-rollback")
class LibraryRehashRollbackStep:
    """`mobius library rehash --rollback`: the hash version active before the last rehash made active again, in one
    transaction, nothing recomputed; undo = the version it switched away from (recorded before the switch)
    active again."""

    name: ClassVar[str] = "library.rehash-rollback"
    Params: ClassVar[type[StepParams]] = LibraryRehashRollbackParams
    probes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: dict[str, Any]):
        LibraryRehashRollbackParams.model_validate(params)

    def plan(self, ctx: StepContext) -> StepPlan:
        return StepPlan("switch the library's fingerprints back to the hash version active before the last rehash")

    def preflight(self, ctx: StepContext) -> Report:
        return Report("library.rehash-rollback preflight", [skipped("library.rehash-rollback.checks",
                                                                    "checked by mobius library rehash --rollback")])

    def apply(self, ctx: StepContext) -> Any:
        from mobius.fingerprint import rollback

        handle = dict(ctx.undo or {})
        if not handle:
            handle = {"active": _active(ctx)}
            ctx.record_undo(handle)
        elif _active(ctx) != handle["active"]:
            return {**handle, "new": _active(ctx)}  # the killed run switched (one transaction): done
        ctx.checkpoint("inside:library.rehash-rollback")
        switch = rollback(ctx.ws)
        handle["new"] = switch.new
        return handle

    def verify(self, ctx: StepContext, handle: Any) -> Report:
        now = _active(ctx)
        return Report("library.rehash-rollback verify", [(passed if now == handle.get("new") else failed)(
            "library.active", now, threshold=handle.get("new"), source="fingerprint store")])

    def rollback(self, ctx: StepContext, handle: Any) -> Report:
        return _switched_back(ctx, handle, "library.rehash-rollback rollback")
