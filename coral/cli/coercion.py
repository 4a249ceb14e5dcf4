"""Coercion of command-line values to the plain types Coral's commands declare, without pydantic.

typer 0.29 coerces every parameter through a pydantic `TypeAdapter` built on first use:
importing pydantic and building a command's adapters costs about 0.1 s of every `coral`
process, more than `coral log -n 20` itself does on a 10^4-commit history. The parameters
annotated `bool`, `str`, `int`, `float` or `Path` (each also `| None` or in a `list`) without
typer's own constraints (`min`, `exists`, a `parser`, ...) get the conversion here instead;
every other parameter (enums, constrained numbers, paths that must exist) keeps typer's.

`install()` (called when the CLI is imported) wraps typer's `_TyperParameter.get_runtime_param`,
so every parameter, the help options typer makes while parsing included, tries the plain
conversion first. This reaches into typer's coercion layer, pinned with typer in
pyproject.toml; tests/cli/test_coercion.py checks the conversions and error messages, and
tests/scale/history/test_startup.py that light commands do not import pydantic.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer._click import Context, Parameter
from typer._click.exceptions import BadParameter
from typer._coercion import RuntimeParam
from typer._param_types import coerce_cli_path
from typer.core import _TyperParameter

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}
# typer's ParameterInfo fields that ask for more than a plain conversion, with their defaults
_PLAIN_INFO: dict[str, Any] = {
    "parser": None,
    "click_type": None,
    "min": None,
    "max": None,
    "clamp": False,
    "path_type": None,
}


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"{value!r} is not a valid boolean (true/false, yes/no, 1/0)")


def to_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        return int(value.strip())
    raise ValueError


def to_float(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        return float(value.strip())
    raise ValueError


def to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    raise ValueError


def to_path(value: Any) -> Path:
    if isinstance(value, Path):
        return value
    return Path(to_str(value))


CONVERTERS: dict[Any, tuple[Callable[[Any], Any], str]] = {
    bool: (to_bool, "boolean"),
    int: (to_int, "integer"),
    float: (to_float, "number"),
    str: (to_str, "text"),
    Path: (to_path, "path"),
}


@dataclass(frozen=True)
class PlainRuntimeParam(RuntimeParam):
    """One plain conversion, applied to each value of a list."""

    convert: Callable[[Any], Any]
    label: str
    as_list: bool

    def _coerce_value(self, value: Any, param: Any, ctx: Context) -> Any:
        if isinstance(value, list | tuple):
            items = [self._one(v, param, ctx) for v in value]
            return items if self.as_list else tuple(items)
        return self._one(value, param, ctx)

    def _one(self, value: Any, param: Any, ctx: Context) -> Any:
        try:
            converted = self.convert(value)
        except (TypeError, ValueError) as exc:
            detail = str(exc) if str(exc) and "is not a valid" in str(exc) else ""
            raise BadParameter(
                detail or f"{value!r} is not a valid {self.label}", ctx=ctx, param=param
            ) from None
        if isinstance(converted, Path):  # exists=, file_okay=, ... checked as typer does
            return coerce_cli_path(
                converted, self.parameter_info, path_type=Path, param=param, ctx=ctx
            )
        return converted


def plain_runtime_param(param: Parameter) -> PlainRuntimeParam | None:
    """The plain coercion of `param`, or None when typer's is needed."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or descriptor.file_annotation is not None:
        return None
    info = descriptor.parameter_info
    if any(getattr(info, k, default) != default for k, default in _PLAIN_INFO.items()):
        return None
    annotation, as_list = descriptor.annotation, False
    if typing.get_origin(annotation) is list:
        (annotation,) = typing.get_args(annotation)
        as_list = True
    if annotation not in CONVERTERS:
        return None
    convert, label = CONVERTERS[annotation]
    return PlainRuntimeParam(
        parameter_info=info,
        annotation=descriptor.annotation,
        convert=convert,
        label=label,
        as_list=as_list,
    )


def install() -> None:
    """Make every typer parameter of this process try the plain coercion first (once)."""
    if getattr(_TyperParameter, "_coral_plain", False):
        return
    typer_runtime_param = _TyperParameter.get_runtime_param

    def get_runtime_param(self: _TyperParameter) -> RuntimeParam:
        if self._runtime_param is None:
            self._runtime_param = plain_runtime_param(self)
        return typer_runtime_param(self)  # typer's own, where the plain one did not apply

    _TyperParameter.get_runtime_param = get_runtime_param  # type: ignore[method-assign]
    _TyperParameter._coral_plain = True  # type: ignore[attr-defined]
