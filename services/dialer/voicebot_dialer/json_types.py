"""Number fields checked as JSON Schema types them: no "3" strings or booleans for numbers (pydantic's
lax mode would take them, and the document would then not say what the API accepts)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, Strict


def _integral_float(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def integer(ge: int, le: int) -> Any:
    """An integer in [ge, le]; JSON Schema's integer includes 3.0. (The bounds go before the validator,
    or pydantic documents them as `ge`/`le` instead of `minimum`/`maximum`.)"""
    return Annotated[int, Strict(), Field(ge=ge, le=le), BeforeValidator(_integral_float)]
# Finite (JSON has no NaN; Python's json module would read one).
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
