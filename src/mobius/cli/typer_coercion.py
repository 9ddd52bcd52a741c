"""Typer's coercion of plain option values (str, bool, int, float, Path, list[str]), without pydantic.

Typer 0.29 converts every parameter's value through a pydantic `TypeAdapter` that it builds the first time
the parameter is processed (`typer/_coercion.py: build_runtime_param`), and Click processes the help
option of every command on the line even when it is absent: importing pydantic and building that first
adapter cost 0.1-0.2 s of every `mobius` start-up, `mobius version` and `--help` included, more than all
of Mobius's own modules. Typer offers no public way around it (`parser=` builds an adapter too).

Every Mobius option is of a plain type, so `PlainRuntimeParam` converts the values Typer's adapters accept
to what those adapters return, and hands everything else to Typer's own adapter: a value it does not
recognise (`0x10`, `1e3`, `١٢`, a bool given as text), any conversion that fails, any type or constraint
it does not know (enums, ranges, files, parsers). So every result and every error message stays Typer's;
only the common, valid case skips pydantic.

This leans on private Typer API (`_TyperParameter.get_runtime_param`, `RuntimeParam`, `TypeDescriptor`,
`coerce_cli_path`): pyproject.toml pins typer to 0.29.x, and tests/core/test_cli_startup.py fails
loudly if that API moves or if a converted value differs from the one Typer's adapter gives. If the
imports below ever fail, `install` does nothing and the CLI works as before, only slower to start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
    from typer._param_types import coerce_cli_path
    from typer.core import _TyperParameter
except ImportError:  # pragma: no cover - a Typer without these internals: keep its own coercion
    RuntimeParam = None  # type: ignore[assignment,misc]

# Text that pydantic's lax int/float validators and Python's int()/float() read as the same number. Longer
# or other spellings (underscores, exponents, non-ASCII digits, inf/nan) go to Typer's adapter.
_INT_TEXT = re.compile(r"[+-]?[0-9]{1,18}", re.ASCII)
_FLOAT_TEXT = re.compile(r"[+-]?[0-9]{1,15}(?:\.[0-9]{1,15})?", re.ASCII)
_PLAIN = (str, bool, int, float, Path)
_UNHANDLED = object()


def _plain_value(annotation: Any, value: Any) -> Any:
    """`value` converted as Typer's adapter for `annotation` converts it, or `_UNHANDLED`."""
    kind = type(value)
    if annotation is str:
        return value if kind is str else _UNHANDLED
    if annotation is bool:
        return value if kind is bool else _UNHANDLED
    if annotation is int:
        if kind is int:
            return value
        return int(value) if kind is str and _INT_TEXT.fullmatch(value) else _UNHANDLED
    if annotation is float:
        if kind is float:
            return value
        if kind is int and abs(value) < 2**53:
            return float(value)
        return float(value) if kind is str and _FLOAT_TEXT.fullmatch(value) else _UNHANDLED
    return _UNHANDLED


def is_plain(descriptor: TypeDescriptor) -> bool:
    """Whether `PlainRuntimeParam` knows this parameter's type and every setting that changes its coercion."""
    info = descriptor.parameter_info
    annotation = descriptor.annotation
    if descriptor.file_annotation is not None or info.parser is not None:
        return False
    if annotation in (int, float):
        return info.min is None and info.max is None and not info.clamp
    if annotation is Path:
        return info.path_type is None
    return annotation in _PLAIN or annotation == list[str]


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class PlainRuntimeParam(RuntimeParam):
        """Coercion of a plain parameter: Typer's result for the values it recognises, else Typer's adapter."""

        descriptor: TypeDescriptor

        def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Any) -> Any:
            converted = self._plain(value, param, ctx)
            if converted is not _UNHANDLED:
                return converted
            return build_runtime_param(self.descriptor)._coerce_value(value, param=param, ctx=ctx)

        def _plain(self, value: Any, param: _TyperParameter, ctx: Any) -> Any:
            annotation = self.annotation
            if annotation is Path:
                if type(value) is str:
                    value = Path(value)  # what pydantic's lax Path validator returns for any text
                elif not isinstance(value, Path):
                    return _UNHANDLED
                try:  # the checks Typer's path adapter runs after that conversion, on the same settings
                    return coerce_cli_path(value, self.parameter_info, path_type=Path, param=param, ctx=ctx)
                except Exception:  # noqa: BLE001 - Typer's adapter runs again and reports it in its own words
                    return _UNHANDLED
            if annotation == list[str]:
                if isinstance(value, (list, tuple)) and all(type(item) is str for item in value):
                    return list(value)
                return _UNHANDLED
            return _plain_value(annotation, value)


def install() -> bool:
    """Make every Typer parameter of a plain type coerce without pydantic (idempotent).

    Returns whether it is in place: False when this Typer lacks the internals it replaces."""
    if RuntimeParam is None:
        return False
    if getattr(_TyperParameter.get_runtime_param, "mobius_plain", False):
        return True

    def get_runtime_param(self: _TyperParameter) -> RuntimeParam:
        if self._runtime_param is None:
            descriptor = self.type_descriptor
            self._runtime_param = PlainRuntimeParam(
                annotation=descriptor.annotation, parameter_info=descriptor.parameter_info, descriptor=descriptor,
            ) if is_plain(descriptor) else build_runtime_param(descriptor)
        return self._runtime_param

    get_runtime_param.mobius_plain = True  # type: ignore[attr-defined]
    get_runtime_param.__doc__ = _TyperParameter.get_runtime_param.__doc__
    _TyperParameter.get_runtime_param = get_runtime_param  # type: ignore[method-assign]
    return True
