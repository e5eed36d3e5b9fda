"""One check for the string options of the configuration dataclasses: the value must be one of its ``Literal``."""

from __future__ import annotations

from typing import get_args


def check_choices(owner: str, obj, choices: dict) -> None:
    """Raise ``ValueError`` naming ``owner.field`` and the allowed values when a field of ``obj`` is not one of
    the values of its ``Literal`` type. ``choices``: ``{field name: Literal[...]}``."""
    for name, literal in choices.items():
        allowed = get_args(literal)
        if getattr(obj, name) not in allowed:
            raise ValueError(f"{owner}.{name} must be one of {allowed}, got {getattr(obj, name)!r}.")
