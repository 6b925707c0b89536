"""The one formatter of money: every command, report and message shows dollars through `usd`."""

from __future__ import annotations

import math


def usd(amount: float | None, *, exact: bool = False, up: bool = False) -> str:
    """Dollars for a person: $1,234.57 from a dollar up, up to three significant digits below ($0.0403,
    $0.000131, $0.30: a per-example cost is tiny); "unknown" for None (a model without a price).
    `exact`: as many decimals as the amount has (to 1e-12), so a budget of $0.00005 shows as given.
    `up`: rounded up to 4 significant digits, for a budget to suggest."""
    if amount is None:
        return "unknown"
    if up and amount > 0:
        digits = max(2, 3 - math.floor(math.log10(amount)))
        amount = math.ceil(amount * 10**digits - 1e-9) / 10**digits
        exact = True
    if exact:
        whole, _, decimals = f"{amount:.12f}".rstrip("0").partition(".")
        return f"${whole}.{decimals.ljust(2, '0')}"
    if amount == 0:
        return "$0"
    if abs(amount) >= 1:
        return f"${amount:,.2f}"
    decimals = max(2, 2 - math.floor(math.log10(abs(amount))))
    whole, _, digits = f"{amount:.{decimals}f}".partition(".")
    return f"${whole}.{digits.rstrip('0').ljust(2, '0')}"  # $0.00004, not $0.0000400
