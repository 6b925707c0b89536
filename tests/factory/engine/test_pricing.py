"""Prices: the shipped dated table, snapshots, overrides, and cost from usage."""

from __future__ import annotations

import pytest

from factory.errors import PriceUnknownError, SettingsError
from factory.engine.pricing import PriceTable, price_table_for
from factory.engine.settings import EngineSettings
from schemas import Usage


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


def test_the_shipped_table_is_dated_and_covers_current_chat_models(table):
    assert table.as_of[:4].isdigit()
    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3", "o4-mini",
                  "gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-4-turbo", "gpt-3.5-turbo"):
        price = table.lookup(model)
        assert price is not None and price.input > 0 and price.output > price.input, model
        assert price.batch_input is not None and price.batch_input < price.input, model


@pytest.mark.parametrize(("snapshot", "base"), [
    ("gpt-4o-2024-08-06", "gpt-4o"), ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"), ("o3-2025-04-16", "o3"),
    ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"), ("gpt-4-0125-preview", "gpt-4-turbo"),
])
def test_a_dated_snapshot_takes_its_base_price(table, snapshot, base):
    assert table.lookup(snapshot).input == table.lookup(base).input


def test_a_snapshot_with_its_own_price_keeps_it(table):
    assert table.lookup("gpt-4o-2024-05-13").input == 5.00 != table.lookup("gpt-4o").input


def test_unknown_models_are_unknown_not_free(table):
    assert table.lookup("ft:gpt-4o-mini:acme::abc123") is None
    assert table.cost("my-local-model", Usage(input_tokens=10, output_tokens=10)) is None
    with pytest.raises(PriceUnknownError, match=r"\[models\.\"my-local-model\"\]"):
        table.require("my-local-model")


def test_cost_counts_cached_input_at_its_price_and_reasoning_inside_output(table):
    usage = Usage(input_tokens=10_000, cached_input_tokens=4_000, output_tokens=2_000, reasoning_tokens=1_500)
    # gpt-4.1: input 2.00, cached 0.50, output 8.00 per 1M
    assert table.cost("gpt-4.1", usage) == pytest.approx((6_000 * 2.00 + 4_000 * 0.50 + 2_000 * 8.00) / 1e6)
    # the Batch API: half price, cached at the batch input price when no batch cached price is given
    assert table.cost("gpt-4.1", usage, batch=True) == pytest.approx((10_000 * 1.00 + 2_000 * 4.00) / 1e6)


def test_a_model_without_a_cache_discount_charges_cached_tokens_in_full(table):
    usage = Usage(input_tokens=1000, cached_input_tokens=1000, output_tokens=0)
    assert table.cost("gpt-4-turbo", usage) == pytest.approx(1000 * 10.00 / 1e6)


def test_the_worst_case_is_every_input_token_uncached_and_all_max_tokens(table):
    price = table.lookup("gpt-4o")
    assert price.worst_case(1000, 500) == pytest.approx((1000 * 2.50 + 500 * 10.00) / 1e6)
    assert price.worst_case(1000, 500) >= price.cost(Usage(input_tokens=1000, cached_input_tokens=900, output_tokens=500))


def test_a_user_file_overrides_and_extends_the_table(tmp_path):
    prices = tmp_path / "prices.toml"
    prices.write_text('[meta]\nas_of = "2030-01-01"\n[models."gpt-4o"]\ninput = 1.0\noutput = 2.0\n'
                      '[models."my-model"]\ninput = 0.1\noutput = 0.2\n')
    table = PriceTable.load(prices)
    assert table.lookup("gpt-4o").input == 1.0 and table.lookup("gpt-4o").cached_input is None
    assert table.lookup("my-model").output == 0.2
    assert table.lookup("gpt-4o-mini").input == 0.15  # the rest of the shipped table stays
    assert "2030-01-01" in table.lookup("my-model").source


def test_a_broken_price_file_says_what_is_expected(tmp_path):
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."m"]\ninput = 1.0\n')
    with pytest.raises(SettingsError, match="models.m.output"):
        PriceTable.load(prices)
    prices.write_text('[models."m"]\ninput = -1\noutput = 1\n')
    with pytest.raises(SettingsError, match="greater than or equal to 0"):
        PriceTable.load(prices)


def test_explicit_prices_from_the_settings_win():
    both = price_table_for(EngineSettings(price_input=3.0, price_output=4.0))
    assert both.lookup("anything").input == 3.0 and both.lookup("gpt-4o").output == 4.0
    only_output = price_table_for(EngineSettings(price_output=4.0))
    assert only_output.lookup("gpt-4o").input == 2.50 and only_output.lookup("gpt-4o").output == 4.0
    assert only_output.lookup("my-model") is None  # one price is not enough for an unknown model


def _price_file(tmp_path, as_of: str):
    path = tmp_path / f"prices-{as_of}.toml"
    path.write_text(f'[meta]\nas_of = "{as_of}"\n\n[models."my-model"]\ninput = 1.0\noutput = 2.0\n')
    return path


def test_a_table_older_than_180_days_says_so_and_how_to_fix_it():
    import datetime as dt

    table = PriceTable.load()
    as_of = dt.date.fromisoformat(table.as_of)
    assert table.staleness_warning(today=as_of + dt.timedelta(days=180)) is None
    warning = table.staleness_warning(today=as_of + dt.timedelta(days=181))
    assert warning is not None and "181 days old" in warning and table.as_of in warning
    assert "--prices FILE" in warning
    assert table.dated(today=as_of + dt.timedelta(days=3)) == f"factory/engine/prices.toml dated {table.as_of} (3 days ago)"


def test_a_users_price_file_shows_its_own_date(tmp_path):
    import datetime as dt

    today = dt.date.today()
    fresh = PriceTable.load(_price_file(tmp_path, today.isoformat()))
    assert fresh.as_of == today.isoformat() and fresh.source.endswith(".toml") and "prices-" in fresh.source
    assert fresh.staleness_warning() is None and "(0 days ago)" in fresh.dated()
    assert fresh.lookup("gpt-4o") is not None  # laid over the shipped table, not instead of it
    old = PriceTable.load(_price_file(tmp_path, "2020-01-01"))
    assert "2020-01-01" in old.staleness_warning()
    # explicit prices for every model: no table is used, so none can be stale
    assert old.with_override(1.0, 2.0).staleness_warning() is None


def test_an_undated_table_is_warned_about(tmp_path):
    path = tmp_path / "undated.toml"
    path.write_text('[models."my-model"]\ninput = 1.0\noutput = 2.0\n')
    assert "has no date" in PriceTable.load(path).staleness_warning()
