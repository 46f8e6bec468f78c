"""Checking a dataclass's field values against their type annotations, so a config read from JSON is checked
field by field and a field added later is checked too, without code of its own.

Understood annotations: ``int`` (not ``bool``), ``float`` (an int is accepted and stored as a float; NaN and
infinities are refused), ``str``, ``bool``, ``Literal[...]``, ``tuple[T, ...]`` and ``tuple[T1, T2]`` (a JSON
list is accepted and stored as a tuple), and ``X | None``. Other annotations are not checked.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal

_NAMES = {int: "an integer", float: "a finite number", str: "a string", bool: "true or false"}


def describe(annotation: Any) -> str:
    """What a value of ``annotation`` looks like, in words: "an integer", "one of 'y', 'rgb'", ..."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(describe(args[0]))}"
        return f"a list of {len(args)}: " + ", ".join(map(describe, args))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if arg is type(None) else describe(arg) for arg in args)
    return _NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _plural(words: str) -> str:
    return words.removeprefix("an ").removeprefix("a ") + "s" if words.startswith(("a ", "an ")) else words


def normalise(value: Any, annotation: Any) -> tuple[bool, Any]:
    """(whether ``value`` fits ``annotation``, the value as stored: lists as tuples, whole numbers as floats)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return any(value == arg and type(value) is type(arg) for arg in args), value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            return False, value
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        if len(args) != len(value):
            return False, value
        items = [normalise(item, arg) for item, arg in zip(value, args, strict=True)]
        return all(fits for fits, _ in items), tuple(item for _, item in items)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            fits, stored = (value is None, value) if arg is type(None) else normalise(value, arg)
            if fits:
                return True, stored
        return False, value
    if annotation is float:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number and math.isfinite(value), float(value) if number else value
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if annotation in (str, bool):
        return isinstance(value, annotation), value
    return True, value


def field_problems(instance: Any) -> dict[str, str]:
    """Check every field of a frozen dataclass against its annotation, storing the normalised value of each that
    fits; returns what each other field must be and what it is (``{"levels": "must be an integer, got 'x'"}``)."""
    hints = typing.get_type_hints(type(instance))
    problems = {}
    for field in dataclasses.fields(instance):
        value = getattr(instance, field.name)
        fits, stored = normalise(value, hints[field.name])
        if fits:
            object.__setattr__(instance, field.name, stored)
        else:
            problems[field.name] = f"must be {describe(hints[field.name])}, got {value!r}"
    return problems


def check_fields(instance: Any) -> None:
    """Check every field of a frozen dataclass against its annotation, storing the normalised value.

    Call it from ``__post_init__``; a value that does not fit is a ValueError naming the field, what it must be
    and what it is.
    """
    problems = field_problems(instance)
    if problems:
        name, problem = next(iter(problems.items()))
        raise ValueError(f"{type(instance).__name__}.{name} {problem}")
