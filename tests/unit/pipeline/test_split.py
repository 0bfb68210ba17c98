import pytest

from pipeline.schema import coerce_frame
from pipeline.split import split_frame
from tests.helpers import make_credit_frame, make_params


def test_stratified_split_sizes_rates_and_reproducibility():
    params = make_params()
    frame = coerce_frame(make_credit_frame(2_000), params.data.schema)
    parts = split_frame(frame, params.split, params.data.schema)
    assert (len(parts.train), len(parts.val), len(parts.test)) == (1_400, 300, 300)
    rate = frame["default"].mean()
    for part in (parts.train, parts.val, parts.test):
        assert part["default"].mean() == pytest.approx(rate, abs=0.01)
    again = split_frame(frame, params.split, params.data.schema)
    assert list(again.test.index) == list(parts.test.index)


def test_time_split_puts_latest_rows_in_test():
    params = make_params(**{"split.method": "time"})
    frame = coerce_frame(make_credit_frame(1_000), params.data.schema).sample(
        frac=1, random_state=0
    )
    parts = split_frame(frame, params.split, params.data.schema)
    assert parts.train["event_time"].max() <= parts.val["event_time"].min()
    assert parts.val["event_time"].max() <= parts.test["event_time"].min()


def test_too_few_rows_is_a_clear_error():
    params = make_params()
    frame = coerce_frame(make_credit_frame(3), params.data.schema)
    with pytest.raises(ValueError, match="3 rows are too few"):
        split_frame(frame, params.split, params.data.schema)
