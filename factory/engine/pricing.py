"""What a request costs: a dated price table shipped with the package, user overrides, and the
cost of a response's `usage`.

Prices are USD per 1M tokens. An unknown price is None ("unknown"), never 0: a report that
silently priced a model at $0 would be worse than one that says it does not know.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from factory.errors import PriceUnknownError, SettingsError
from schemas import Usage

PER_TOKENS = 1_000_000
# A price table older than this gets a warning wherever a cost is projected or reported.
STALE_AFTER_DAYS = 180
# "gpt-4o-2024-08-06", "o3-2025-04-16", "gpt-3.5-turbo-0125": a dated snapshot of a base model.
_SNAPSHOT = re.compile(r"^(?P<base>.+?)-(?:\d{4}-\d{2}-\d{2}|\d{4})$")


@dataclass(frozen=True)
class ModelPrice:
    """USD per 1M tokens. `cached_input` None: no cache discount; batch None: no Batch API price."""

    input: float
    output: float
    cached_input: float | None = None
    batch_input: float | None = None
    batch_output: float | None = None
    batch_cached_input: float | None = None
    source: str = ""

    def cost(self, usage: Usage, *, batch: bool = False) -> float | None:
        """USD for `usage`. Reasoning tokens are already inside `output_tokens`: not added again.
        None when the Batch API price is asked for and unknown."""
        if batch:
            if self.batch_input is None or self.batch_output is None:
                return None
            # No separate batch cached price: charge cached tokens at the batch input price, an
            # upper bound rather than a guess.
            inp, out = self.batch_input, self.batch_output
            cached = self.batch_cached_input if self.batch_cached_input is not None else inp
        else:
            inp, out = self.input, self.output
            cached = self.cached_input if self.cached_input is not None else inp
        cached_tokens = min(usage.cached_input_tokens, usage.input_tokens)
        fresh_tokens = usage.input_tokens - cached_tokens
        return (fresh_tokens * inp + cached_tokens * cached + usage.output_tokens * out) / PER_TOKENS

    def worst_case(self, input_tokens: int, max_output_tokens: int, *, batch: bool = False) -> float:
        """The most a request can cost: every input token uncached, every allowed output token used."""
        inp, out = (self.batch_input, self.batch_output) if batch else (self.input, self.output)
        if inp is None or out is None:  # batch price unknown: the standard price bounds it
            inp, out = self.input, self.output
        return (input_tokens * inp + max_output_tokens * out) / PER_TOKENS


class _PriceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    batch_input: float | None = Field(default=None, ge=0)
    batch_output: float | None = Field(default=None, ge=0)
    batch_cached_input: float | None = Field(default=None, ge=0)


class _PriceFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    meta: dict[str, Any] = Field(default_factory=dict)
    models: dict[str, _PriceEntry] = Field(default_factory=dict)
    aliases: dict[str, str] = Field(default_factory=dict)


@dataclass
class PriceTable:
    """Model name -> price. `as_of` is the date the shipped prices were read."""

    prices: dict[str, ModelPrice]
    aliases: dict[str, str]
    as_of: str
    override: ModelPrice | None = None  # --price-input/--price-output: applies to every model
    source: str = "factory/engine/prices.toml"  # the file whose date `as_of` is: ours, or the user's --prices

    @classmethod
    def load(cls, user_file: str | Path | None = None) -> PriceTable:
        """The shipped table, with `user_file`'s entries (same layout) laid over it."""
        shipped = resources.files("factory.engine").joinpath("prices.toml").read_text(encoding="utf-8")
        table = cls._from_text(shipped, "prices.toml")
        if user_file is not None:
            path = Path(user_file)
            try:
                user = cls._from_text(path.read_text(encoding="utf-8"), str(path))
            except FileNotFoundError:
                raise SettingsError(f"price file not found: {path}") from None
            table.prices.update(user.prices)
            table.aliases.update(user.aliases)
            # The user's file is the one to keep current: its date is the one to show.
            table = replace(table, as_of=user.as_of, source=str(path))
        return table

    @classmethod
    def _from_text(cls, text: str, source: str) -> PriceTable:
        try:
            doc = _PriceFile.model_validate(tomllib.loads(text))
        except tomllib.TOMLDecodeError as e:
            raise SettingsError(f"{source}: not valid TOML: {e}") from None
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise SettingsError(
                f"{source}: {where}: {err['msg']} (expected [models.\"NAME\"] tables with input, output, "
                "and optional cached_input, batch_input, batch_output, batch_cached_input in USD per 1M tokens)"
            ) from None
        as_of = str(doc.meta.get("as_of", "unknown date"))
        label = f"{source} ({as_of})"
        prices = {name: ModelPrice(**e.model_dump(), source=label) for name, e in doc.models.items()}
        return cls(prices=prices, aliases=dict(doc.aliases), as_of=as_of)

    def age_days(self, today: dt.date | None = None) -> int | None:
        """Days since the table's date; None where it has none (or one that is not YYYY-MM-DD)."""
        try:
            as_of = dt.date.fromisoformat(self.as_of)
        except ValueError:
            return None
        return ((today or dt.date.today()) - as_of).days

    def dated(self, today: dt.date | None = None) -> str:
        """`prices.toml dated 2025-08-20 (469 days ago)`: the words a projection or a report shows."""
        if self.override is not None:
            return "the prices given with --price-input/--price-output"
        age = self.age_days(today)
        return f"{self.source} dated {self.as_of}" + ("" if age is None else f" ({age} days ago)")

    def staleness_warning(self, today: dt.date | None = None) -> str | None:
        """A warning when the table is older than STALE_AFTER_DAYS (or undated); None otherwise."""
        if self.override is not None:
            return None
        age = self.age_days(today)
        if age is not None and age <= STALE_AFTER_DAYS:
            return None
        when = "has no date ([meta] as_of)" if age is None else f"is {age} days old (dated {self.as_of})"
        return (f"warning: the price table {self.source} {when}: prices may have changed. Check "
                "https://openai.com/api/pricing/ and give your own table with --prices FILE (same layout) "
                "or --price-input/--price-output")

    def with_override(self, price_input: float | None, price_output: float | None) -> PriceTable:
        """Explicit prices for every model. Given only one of the two, a model the table knows
        keeps its other price; a model it does not know stays unknown."""
        if price_input is None and price_output is None:
            return self
        if price_input is not None and price_output is not None:
            over = ModelPrice(input=price_input, output=price_output, source="--price-input/--price-output")
            return replace(self, override=over)
        prices = {
            name: replace(
                p,
                input=p.input if price_input is None else price_input,
                output=p.output if price_output is None else price_output,
                cached_input=p.cached_input if price_input is None else None,
                source=f"{p.source} with --price-input/--price-output",
            )
            for name, p in self.prices.items()
        }
        return replace(self, prices=prices)

    def lookup(self, model: str) -> ModelPrice | None:
        """The price of `model`; a dated snapshot falls back to its base name. None: unknown."""
        if self.override is not None:
            return self.override
        for name in (model, self.aliases.get(model)):
            if name and name in self.prices:
                return self.prices[name]
        m = _SNAPSHOT.match(model)
        if m:
            base = m.group("base")
            return self.prices.get(self.aliases.get(base, base))
        return None

    def cost(self, model: str, usage: Usage, *, batch: bool = False) -> float | None:
        price = self.lookup(model)
        return None if price is None else price.cost(usage, batch=batch)

    def require(self, model: str) -> ModelPrice:
        """The price of `model`, or an error saying how to give one (used when a budget is set)."""
        price = self.lookup(model)
        if price is None:
            raise PriceUnknownError(
                f"no price known for model {model!r}, and a budget (--max-cost) needs one: "
                "give --price-input and --price-output (USD per 1M tokens), or a --prices TOML file "
                f"with a [models.\"{model}\"] table"
            )
        return price


def price_table_for(settings: Any) -> PriceTable:
    """The table an engine run uses: shipped, then `settings.prices_file`, then the explicit prices."""
    table = PriceTable.load(getattr(settings, "prices_file", None))
    return table.with_override(getattr(settings, "price_input", None), getattr(settings, "price_output", None))
