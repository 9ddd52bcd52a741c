"""A migration plan's YAML as a plan may be written (no aliases, no key given twice, bounded nesting), and the
line of the node a validation error points at. Apart from ops.plan so that a command without a plan file (every
plain command runs as a one-step plan) does not import yaml.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml import YAMLError

__all__ = ["MAX_DEPTH", "RefusedYaml", "YAMLError", "line_of", "read_yaml"]


def _node_at(node: yaml.Node | None, loc: tuple[Any, ...]) -> yaml.Node | None:
    """The YAML node at a pydantic error location (as deep as it goes)."""
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if k.value == (key if key != "validate_" else "validate")
                          or k.value == key), None)
            if found is None:
                return node
            node = found[1] if not isinstance(key, str) or found[1] is not None else found[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            return node
    return node


MAX_DEPTH = 32  # a plan needs about six levels


class RefusedYaml(yaml.MarkedYAMLError):
    """YAML that a plan may not use (an alias, a key given twice, nesting beyond MAX_DEPTH)."""


class _PlanLoader(yaml.SafeLoader):
    """YAML as a plan may be written: no aliases, no duplicate keys.

    An alias (`*name`, and so `<<: *name`) can expand a few hundred bytes into gigabytes (a "billion
    laughs" plan), and a plan has no need of one: refused where it stands. A key given twice would
    silently lose the first value (`steps:` twice runs only the second list): refused with its line.
    """

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise RefusedYaml(
                None, None, f"an alias (*{event.anchor}) is not accepted in a plan; write the value out",
                event.start_mark)
        if self.depth >= MAX_DEPTH:  # thousands of `[` would exhaust Python's stack
            raise RefusedYaml(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: {...}` is merged by the base constructor
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:
                continue  # an unhashable key: the base constructor names it
            if first is not key_node:
                raise RefusedYaml(
                    None, None, f"key {key!r} given twice (first on line {first.start_mark.line + 1})",
                    key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def read_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The document's node tree (for line numbers) and its value, from one parse."""
    loader = _PlanLoader(text)
    try:
        root = loader.get_single_node()
        return root, (loader.construct_document(root) if root is not None else None)
    finally:
        loader.dispose()


def line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    node = _node_at(root, loc)
    return node.start_mark.line + 1 if node is not None else 1
