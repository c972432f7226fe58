"""Token counts as both families' usage objects carry them."""

from __future__ import annotations


def token_counts(
    usage: dict[str, object], input_key: str, output_key: str
) -> tuple[int | None, int | None]:
    """(input, output) tokens of a usage object; None where it does not say."""
    return _count(usage.get(input_key)), _count(usage.get(output_key))


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
