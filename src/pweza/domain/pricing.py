"""Money for model calls: prices per million tokens, amounts kept as integer micro-units.

A ModelConfig's price is per million tokens, so a price in currency units per million tokens is
exactly a price in micro-units per token: a call's cost is `tokens * price` micro-units, with no
division. Prices and budgets are written as decimal numbers with at most six places, read
through their shortest decimal spelling (0.15 is 15/100, not the binary fraction nearest it),
and a call's cost is rounded up to the micro-unit: stored sums never count less than was paid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Annotated

from pydantic import AfterValidator, Field

PLACES = 6
MICROS_PER_UNIT = 1_000_000  # 10**PLACES
# One currency unit per token: far above any hosted model's price, low enough to catch a typo.
MAX_PRICE_PER_MILLION = 1_000_000
MAX_BUDGET_COST = 10**9


def _at_most_six_places(value: float) -> float:
    exponent = Decimal(repr(value)).as_tuple().exponent
    if not isinstance(exponent, int) or exponent < -PLACES:
        raise ValueError(f"{value!r} has more than {PLACES} decimal places (amounts are counted in millionths)")
    return value


# A decimal amount of money; bounds are set where it is used.
Money = Annotated[float, AfterValidator(_at_most_six_places)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="An ISO 4217 code in capitals, such as USD.")]


def micros(amount: float) -> int:
    """An amount of at most six decimal places in micro-units, exactly."""
    return int(Decimal(repr(amount)).scaleb(PLACES).to_integral_value(rounding=ROUND_CEILING))


def call_cost(prompt_per_million: float, completion_per_million: float, prompt: int, completion: int) -> int:
    """The micro-units a call of `prompt` and `completion` tokens costs, rounded up."""
    exact = Decimal(repr(prompt_per_million)) * prompt + Decimal(repr(completion_per_million)) * completion
    return int(exact.to_integral_value(rounding=ROUND_CEILING))


def units(amount_micros: int) -> float:
    """Micro-units as a number of currency units, for JSON and metrics (the nearest float)."""
    return amount_micros / MICROS_PER_UNIT


def spelled(amount_micros: int, currency: str) -> str:
    """`0.000123 USD`: the amount in units, as few places as it needs."""
    text = format(Decimal(amount_micros).scaleb(-PLACES).normalize(), "f")
    return f"{text} {currency}"


@dataclass(frozen=True, slots=True)
class Spent:
    """What a set of calls paid for: their tokens, and their cost in micro-units by currency
    (calls made with no price known count in `tokens` only)."""

    tokens: int = 0
    costs: dict[str, int] = field(default_factory=dict)

    def cost(self, currency: str) -> int:
        return self.costs.get(currency, 0)

    @property
    def currency(self) -> str | None:
        """The one currency the cost is in; None when there is none, or more than one."""
        return next(iter(self.costs)) if len(self.costs) == 1 else None


__all__ = [
    "MAX_BUDGET_COST",
    "MAX_PRICE_PER_MILLION",
    "MICROS_PER_UNIT",
    "Currency",
    "Money",
    "Spent",
    "call_cost",
    "micros",
    "spelled",
    "units",
]
