"""The capabilities' steps; importing this package registers them in mobius.ops.step.REGISTRY."""

from mobius.ops.steps import backup, config, db, envs, golden, library, media  # noqa: F401
