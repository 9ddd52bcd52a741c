"""Post-migration validation (the runbook's list) and performance probes measured before and after.

Probes take the median of several samples, so one slow sample never triggers a rollback; a
degradation counts only beyond the plan's ratio and MIN_DELTA_S (timer noise on tiny workloads).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mobius import faults
from mobius.config import Workspace, is_url
from mobius.ops.plan import Plan
from mobius.results import Check, Report, failed, passed, skipped
from mobius.safety.tree import FILE, walk

MIN_DELTA_S = 0.05


def library_files(ws: Workspace) -> int | None:
    if is_url(ws.library) or not ws.library_path.is_dir():
        return None
    return sum(1 for e in walk(ws.library_path) if e.kind == FILE)


def baseline(ws: Workspace, plan: Plan, folder: Path) -> dict[str, Any]:
    """What validation compares against: file count, a library manifest, probe medians."""
    out: dict[str, Any] = {"library_files": library_files(ws)}
    if "checksums" in plan.validate_ and out["library_files"] is not None:
        from mobius.media.manifest import build_manifest

        manifest = folder / "library.sha256"
        build_manifest(ws.library_path, manifest)
        out["manifest"] = str(manifest)
    out["probes"] = measure_probes(ws, plan.probe_names(), plan.probe_samples)
    return out


def _probe(ws: Workspace, name: str) -> Callable[[], object] | None:
    if name == "library_listing":
        return None if is_url(ws.library) else (lambda: sum(1 for _ in walk(ws.library_path)))
    if name == "pipeline_test":
        from mobius.render import pipeline_test

        return lambda: pipeline_test(ws)
    if name == "golden_check":
        from mobius.golden.baseline import games_with_goldens
        from mobius.golden.workflow import check_all

        return (lambda: check_all(ws)) if games_with_goldens(ws) else None
    if name == "service_ready":
        from mobius.ops.preflight import service_check

        return (lambda: service_check(ws)) if ws.settings.service_url else None
    return None


# One sample's cost where it is not measured, from a run on the sample workspace (3 games) on 2 busy
# cores: a pipeline test took 1.5 s; a golden check is rougher (about a second a game with goldens).
PIPELINE_TEST_S = (0.3, 0.4)  # start, then per game spec
GOLDEN_CHECK_S = (0.3, 1.0)  # start, then per game with goldens
SERVICE_READY_S = 0.05


def probe_costs(ws: Workspace, names: list[str], samples: int) -> dict[str, Any]:
    """What each probe will cost this run, before and after the steps: name -> {seconds, per_sample, how}
    (or {skipped: why}). The listing is measured (one walk, the same as counting the files); the others
    are estimated from what they will check, without rendering anything."""
    out: dict[str, Any] = {}
    for name in names:
        if _probe(ws, name) is None:
            out[name] = {"skipped": "not applicable here"}
            continue
        if name == "library_listing":
            started = time.perf_counter()
            sum(1 for _ in walk(ws.library_path))
            per_sample, how = time.perf_counter() - started, "measured: one listing"
        elif name == "pipeline_test":
            from mobius.render.spec import list_specs

            games = len(list_specs(ws.games))
            per_sample, how = PIPELINE_TEST_S[0] + PIPELINE_TEST_S[1] * games, f"estimated: {games} game spec(s)"
        elif name == "golden_check":
            from mobius.golden.baseline import games_with_goldens

            games = len(games_with_goldens(ws))
            per_sample, how = GOLDEN_CHECK_S[0] + GOLDEN_CHECK_S[1] * games, f"estimated: {games} game(s) with goldens"
        else:
            per_sample, how = SERVICE_READY_S, "estimated: one request to /ready"
        per_sample = round(per_sample, 4)  # the total is computed from the figure shown, so the two agree
        out[name] = {"seconds": round(2 * samples * per_sample, 3), "per_sample": per_sample,
                     "how": f"{how}; {samples} sample(s) before and after"}
    return out


def measure_probes(ws: Workspace, names: list[str], samples: int) -> dict[str, Any]:
    """name -> {median_s, samples} (or {skipped: why})."""
    out: dict[str, Any] = {}
    for name in names:
        probe = _probe(ws, name)
        if probe is None:
            out[name] = {"skipped": "not applicable here"}
            continue
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            probe()
            times.append(time.perf_counter() - started)
        out[name] = {"median_s": round(statistics.median(times), 4), "samples": [round(t, 4) for t in times]}
    return out


def compare_probes(before: dict[str, Any], after: dict[str, Any], limit: float) -> list[Check]:
    checks = []
    for name, b in before.items():
        a = after.get(name, {})
        if "median_s" not in b or "median_s" not in a:
            checks.append(skipped(f"performance.{name}", b.get("skipped") or a.get("skipped") or "not measured"))
            continue
        base, now = b["median_s"], a["median_s"]
        change = (now - base) / base if base > 0 else 0.0
        bad = change > limit and now - base > MIN_DELTA_S
        checks.append((failed if bad else passed)(f"performance.{name}", round(change * 100, 1), unit="% slower",
                                                  threshold=f"<= {limit * 100:g}%", source="median of samples",
                                                  detail=f"before {base:.4f} s, after {now:.4f} s"))
    return checks


def run_validation(ws: Workspace, plan: Plan, before: dict[str, Any]) -> tuple[Report, dict[str, Any]]:
    """The plan's validation list, then the probes again; any failure means rollback."""
    report = Report(f"validation of {plan.name}")
    for name in plan.validate_:
        report.extend(_validate(ws, name, before))
    for check in list(report.checks):
        if faults.fails(check.name.split(".")[0]):
            report.checks[report.checks.index(check)] = failed(check.name, check.observed, source="MOBIUS_FAULT",
                                                               detail="injected failure (test hook)")
    after = measure_probes(ws, plan.probe_names(), plan.probe_samples)
    report.extend(compare_probes(before.get("probes", {}), after, plan.monitors.performance_degradation_rollback))
    return report, {"probes": after, "library_files": library_files(ws)}


def _validate(ws: Workspace, name: str, before: dict[str, Any]) -> list[Check]:
    if name == "file_counts":
        now = library_files(ws)
        if now is None or before.get("library_files") is None:
            return [skipped("file_counts", "the library is not a local folder")]
        return [(passed if now == before["library_files"] else failed)(
            "file_counts", now, threshold=f"== {before['library_files']}", unit="files", source=str(ws.library_path))]
    if name == "checksums":
        if not before.get("manifest"):
            return [skipped("checksums", "no manifest taken at preflight (library not local)")]
        from mobius.media.manifest import verify_against

        result = verify_against(ws.library_path, Path(before["manifest"]))
        return [(passed if result.ok else failed)("checksums", result.checked, unit="files",
                                                  source=before["manifest"],
                                                  detail="; ".join(result.problems()[:3]))]
    if name == "db_check":
        from mobius.db import check_database

        problems = [c.detail or c.name for c in check_database(ws).failures()]
        return [(failed if problems else passed)("db_check", len(problems), threshold=0, unit="problems",
                                                 source="mobius db check", detail="; ".join(problems[:3]))]
    if name == "golden_check_all":
        from mobius.golden.baseline import games_with_goldens
        from mobius.golden.workflow import check_all

        if not games_with_goldens(ws):
            return [skipped("golden_check_all", f"no goldens in {ws.golden}")]
        reports = check_all(ws)
        bad = [f"{r.game} {c.name}" for r in reports for c in r.failures]
        return [(failed if bad else passed)("golden_check_all", len(bad), threshold=0, unit="failed checks",
                                            source="mobius golden check-all", detail=", ".join(bad[:5]))]
    if name == "pipeline_test":
        from mobius.render import pipeline_test

        result = pipeline_test(ws)
        return [(passed if result.passed else failed)("pipeline_test", len(result.failures()), threshold=0,
                                                      unit="problems", source="mobius pipeline test",
                                                      detail="; ".join(result.failures()[:3]))]
    return [skipped(name, "unknown validation")]


