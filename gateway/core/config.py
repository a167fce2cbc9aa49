"""Base class for configuration sections. Sections live next to the code they configure."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Section"]


class Section(BaseModel):
    """A strict, immutable settings section: unknown keys are errors, and so is an infinity or
    a NaN anywhere (``inf`` as a timeout would switch a safety function off)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_default=True,
        use_attribute_docstrings=True,
        allow_inf_nan=False,
    )
