"""One name per result concept (#22): no two classes (or module-level aliases) in src/mobius share a
result name, so `Check`, `Report` and `Outcome` always mean the one in mobius.results / its owner.

An AST scan, not an import: it sees every module, also those that load heavy libraries."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import mobius

SRC = Path(mobius.__file__).parent
EXACT = {"Check", "Report", "Outcome"}
SUFFIXES = ("Result", "Report", "Outcome")


def result_name(name: str) -> bool:
    return name in EXACT or name.endswith(SUFFIXES)


def defined_names(tree: ast.Module) -> list[tuple[str, int]]:
    """Classes anywhere in the module, and module-level aliases (`Report = Callable[...]`, `X: TypeAlias = ...`)."""
    names = [(n.name, n.lineno) for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else [node.name] if type(node).__name__ == "TypeAlias" else []  # 3.12 `type X =`
        names += [(t.id, node.lineno) for t in targets if isinstance(t, ast.Name)]
    return [(name, line) for name, line in names if result_name(name)]


def result_names(root: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for name, line in defined_names(tree):
            found[name].append(f"{path.relative_to(root)}:{line}")
    return found


def test_no_two_result_classes_share_a_name() -> None:
    clashes = {name: where for name, where in result_names(SRC).items() if len(where) > 1}
    assert not clashes, "result names defined more than once (give each a name that says what it is): " + "; ".join(
        f"{name} in {', '.join(where)}" for name, where in sorted(clashes.items()))


def test_the_scan_sees_a_clash(tmp_path: Path) -> None:
    """The check can fail: a second Check, or a callable alias named Report, is found."""
    (tmp_path / "a.py").write_text("class Check:\n    pass\n\nclass MediaResult:\n    pass\n")
    (tmp_path / "b.py").write_text("from dataclasses import dataclass\n\n@dataclass\nclass Check:\n    x: int\n")
    (tmp_path / "c.py").write_text("from typing import Callable\nReport = Callable[[str], None]\n")
    (tmp_path / "d.py").write_text("class Report:\n    pass\n")
    found = result_names(tmp_path)
    assert found["Check"] == ["a.py:1", "b.py:4"]
    assert found["Report"] == ["c.py:2", "d.py:1"]
    assert found["MediaResult"] == ["a.py:4"]
