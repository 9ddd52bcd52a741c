"""`config.set {setting: {NAME: VALUE}}`: one setting in the workspace `.env`, switched atomically; undo = the
value before it (or no line, when there was none), proved by the file's digest.

The setting travels under its own name so that the record masks a secret's value like any other (a URL's
password too): such a value is never in the record, so a killed `config set` of one is not resumed (run
the command again) and its undo is refused rather than writing the mask into `.env`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from mobius.config import MASK, SettingChange, is_secret_field, set_setting, setting_name
from mobius.errors import InputError
from mobius.ops.digests import file_digest
from mobius.ops.step import StepContext, StepParams, StepPlan, register_step
from mobius.records import records_call
from mobius.results import Report, failed, passed, skipped
from mobius.safety.envfile import read_env_file

# the one recording path (records_call) around the core's set_setting; a secret setting's value is never recorded
recorded_set_setting = records_call("config.set", params=lambda a: {
    "name": a["name"], "value": MASK if is_secret_field(str(a["name"])) else a["value"]})(set_setting)


class ConfigSetParams(StepParams):
    setting: dict[str, str | None] = Field(min_length=1, max_length=1)  # {name: value}; None removes the line


@register_step("config.set")
class ConfigSetStep:
    name: ClassVar[str] = "config.set"
    Params: ClassVar[type[StepParams]] = ConfigSetParams
    probes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: dict[str, Any]):
        ((self.key, self.value),) = ConfigSetParams.model_validate(params).setting.items()

    def plan(self, ctx: StepContext) -> StepPlan:
        return StepPlan(f"set {self.key} in {ctx.ws.env_file}")

    def preflight(self, ctx: StepContext) -> Report:
        return Report("config.set preflight", [skipped("config.set.checks", "checked by mobius config set itself")])

    def apply(self, ctx: StepContext) -> Any:
        name = setting_name(self.key)
        if ctx.undo and MASK in (self.value or ""):  # read back from the record, where it was masked
            raise InputError(f"the value of the secret setting {name} is not in the record, so this config set "
                             "cannot be resumed", hint=f"run mobius config set {name} VALUE again")
        handle = dict(ctx.undo or {})
        if not handle:
            handle = {"previous": {name: read_env_file(ctx.ws.env_file).get(name)},
                      "env_sha256": file_digest(ctx.ws.env_file)}
            ctx.record_undo(handle)
        change: SettingChange = recorded_set_setting(ctx.ws, self.key, self.value)
        handle["after_sha256"] = file_digest(ctx.ws.env_file)
        handle["name"] = change.name
        return handle

    def verify(self, ctx: StepContext, handle: Any) -> Report:
        digest = file_digest(ctx.ws.env_file)
        return Report("config.set verify", [(passed if digest == handle.get("after_sha256") else failed)(
            "config.set.written", (digest or "")[:16], threshold=(handle.get("after_sha256") or "")[:16],
            source=f"sha256 of {ctx.ws.env_file}", detail=handle.get("name"))])

    def rollback(self, ctx: StepContext, handle: Any) -> Report:
        report = Report("config.set rollback")
        if not handle or not handle.get("previous"):
            report.add(skipped("config.undo", "the step never started"))
            return report
        ((name, previous),) = handle["previous"].items()
        if file_digest(ctx.ws.env_file) != handle["env_sha256"]:
            if MASK in (previous or ""):  # a secret, or a URL's password: masked in the record
                report.add(failed("config.set.undo", None, detail=f"the previous value of the secret {name} is not "
                                  "in the record; set it again by hand: mobius config set NAME VALUE"))
                return report
            set_setting(ctx.ws, name, previous)
        digest = file_digest(ctx.ws.env_file)
        report.add((passed if digest == handle["env_sha256"] else failed)(
            ".env.restored", (digest or "")[:16], threshold=(handle["env_sha256"] or "")[:16],
            source=f"sha256 of {ctx.ws.env_file}"))
        return report
