"""Named environments (staging, production, ...): list, show, diff, validate, promote, deploy, rollback.

Public API (the CLI `mobius env ...`, `mobius deploy`, `mobius rollback`, `mobius releases` calls these):
    list_environments(root) -> list[EnvironmentInfo]
    load_environment(root, name) -> Workspace
    show_environment(root, name) -> dict
    diff_environments(root, a, b) -> EnvDiff
    validate_environment(ws) -> Report
    prepare_promote / run_promote, dry_run_deploy / run_deploy, prepare_rollback / run_rollback: the phases;
    mobius.ops.commands.promote / deploy / rollback run them on the migration runner (resumable, undoable)
    list_releases(ws) -> list[Release]
"""

from mobius.envs.diff import EnvDiff, diff_environments
from mobius.envs.environments import EnvironmentInfo, list_environments, load_environment, show_environment
from mobius.envs.validate import validate_environment

__all__ = ["EnvDiff", "EnvironmentInfo", "diff_environments", "list_environments", "load_environment",
           "show_environment", "validate_environment"]
