"""Base class for configuration sections. Sections live next to the code they configure."""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

__all__ = ["Section"]


def _is_number(annotation: Any) -> bool:
    """Whether a field's type is a number (``float``, ``int``, optionally ``| None``), not a
    ``bool``."""
    if annotation in (float, int):
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        args = get_args(annotation)
        return bool not in args and any(a in (float, int) for a in args)
    return False


def _is_numbers(annotation: Any) -> bool:
    """Whether a field's type is a sequence of numbers (``tuple[float, ...]``, ``list[int]``,
    optionally ``| None``): a table's breakpoints or values."""
    options = (
        get_args(annotation)
        if get_origin(annotation) in (Union, types.UnionType)
        else (annotation,)
    )
    return any(
        get_origin(a) in (tuple, list) and all(e in (float, int, Ellipsis) for e in get_args(a))
        for a in options
    )


class Section(BaseModel):
    """A strict, immutable settings section: unknown keys are errors, and so is an infinity or
    a NaN anywhere (``inf`` as a timeout would switch a safety function off), and a boolean
    given for a number, alone or in a table (pydantic would read TOML ``true`` as 1:
    ``float_raise_days = true`` meant to switch the raise on, and got one day)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_default=True,
        use_attribute_docstrings=True,
        allow_inf_nan=False,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_for_a_number(cls, value: object, info: ValidationInfo) -> object:
        field = None if info.field_name is None else cls.model_fields.get(info.field_name)
        if field is None:
            return value
        if isinstance(value, bool) and _is_number(field.annotation):
            raise ValueError("Input should be a number, not a boolean")
        if (
            isinstance(value, list | tuple)
            and any(isinstance(v, bool) for v in value)
            and _is_numbers(field.annotation)
        ):
            raise ValueError("Input should be a list of numbers, not of booleans")
        return value
