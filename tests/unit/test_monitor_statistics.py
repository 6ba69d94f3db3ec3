"""The monitor's arithmetic on tables: categories, missing values, identical inputs, and a
regressor's predictions by hour."""

import numpy
import pandas
import pytest

from registry.client import monitor


def test_text_columns_compare_category_shares_and_missing_values() -> None:
    then = pandas.DataFrame({"plan": ["gold"] * 50 + ["basic"] * 50})
    now = pandas.DataFrame({"plan": ["gold"] * 20 + ["basic"] * 60 + ["trial"] * 10 + [None] * 10})

    column = monitor._column("plan", "string", then, now)

    shares = {
        c["category"]: (c["reference_share"], c["captured_share"]) for c in column["categories"]
    }
    assert shares == {"basic": (0.5, 60 / 90), "gold": (0.5, 20 / 90), "trial": (0.0, 10 / 90)}
    assert (column["missing_reference"], column["missing_captured"]) == (0.0, 0.1)
    expected = sum(
        (max(b, 1e-4) - max(a, 1e-4)) * numpy.log(max(b, 1e-4) / max(a, 1e-4))
        for a, b in shares.values()
    )
    assert column["psi"] == pytest.approx(expected)
    assert monitor.verdict(column["psi"]) == "shift"


def test_the_same_distribution_is_stable() -> None:
    values = numpy.random.default_rng(0).normal(size=1000)
    frame = pandas.DataFrame({"x": values})
    column = monitor._column("x", "number", frame, frame.sample(frac=1, random_state=1))
    assert column["psi"] == pytest.approx(0.0, abs=1e-12)
    assert monitor.verdict(column["psi"]) == "stable"


def test_a_regressors_predictions_are_summarised_by_hour() -> None:
    records = [
        {"eventMetadata": {"inferenceTime": f"2026-12-04T{hour:02d}:15:00.000000Z"},
         "predictions": [float(value) for value in range(hour, hour + 21)]}
        for hour in (9, 10)
    ]  # fmt: skip
    hours = monitor._predictions_by_hour(pandas, records, None)
    assert [hour["hour"] for hour in hours] == ["2026-12-04T09:00Z", "2026-12-04T10:00Z"]
    assert [hour["mean"] for hour in hours] == [19.0, 20.0]
    assert [hour["p05"] for hour in hours] == [10.0, 11.0]
