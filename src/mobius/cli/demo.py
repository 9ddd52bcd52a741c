"""`mobius demo`: the main job on the embedded defaults, end to end."""

from __future__ import annotations

from pathlib import Path

import typer

from mobius.cli.context import current
from mobius.cli.options import changes
from mobius.cli.output import emit, say
from mobius.config import load_workspace
from mobius.demo import DemoStep, run_demo


@changes
def demo_command(
    directory: Path = typer.Argument(Path("mobius-demo"), help="Folder for the sample workspace."),
) -> None:
    """Create a sample workspace and run every Mobius step on it, then summarize.

    Example: mobius demo ./mobius-demo
    """
    root = directory.expanduser().resolve()
    say(f"mobius demo in {root}")

    def show(step: DemoStep) -> None:
        say(f"  ok  {step.name:<22} {step.seconds:6.2f}s  {step.summary}")
        for line in step.details:
            say(f"        {line}")

    report = run_demo(load_workspace(root), progress=current.progress(), on_step=show)
    current.set_workspace(load_workspace(root))
    emit(report.to_dict(), [f"demo finished in {report.seconds:.1f}s: {len(report.steps)} steps passed",
                            f"workspace: {root}", f"plan: {report.plan} (migration {report.migration}; "
                            f"mobius migrate report {report.migration} -w {root})"])


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
