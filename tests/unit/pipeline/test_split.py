import pandas as pd
import pytest

from pipeline.params import ParamsError
from pipeline.schema import coerce_frame
from pipeline.split import split_frame
from tests.helpers import make_credit_frame, make_params


def test_stratified_split_sizes_rates_and_reproducibility():
    params = make_params(**{"split.method": "stratified"})
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
    params = make_params(**{"split.method": "stratified"})
    frame = coerce_frame(make_credit_frame(3), params.data.schema)
    with pytest.raises(ValueError, match="3 rows are too few"):
        split_frame(frame, params.split, params.data.schema)


def test_hash_split_keeps_every_old_row_in_its_part_when_rows_are_appended():
    params = make_params()
    schema = params.data.schema
    old = coerce_frame(make_credit_frame(3_000, seed=0), schema)
    window = coerce_frame(make_credit_frame(1_500, seed=1), schema)
    before = split_frame(old, params.split, schema)
    after = split_frame(pd.concat([window, old], ignore_index=True), params.split, schema)
    key = [*schema.features, "event_time"]

    def rows(frame: pd.DataFrame) -> set[tuple[object, ...]]:
        return set(frame[key].astype(str).itertuples(index=False, name=None))

    for part in ("train", "val", "test"):
        assert rows(getattr(before, part)) <= rows(getattr(after, part)), part
    assert len(before.test) == pytest.approx(0.15 * 3_000, rel=0.15)
    assert len(after.test) - len(before.test) == pytest.approx(0.15 * 1_500, rel=0.25)


def test_hash_split_never_looks_at_the_label():
    params = make_params()
    schema = params.data.schema
    frame = coerce_frame(make_credit_frame(2_000), schema)
    relabelled = frame.assign(default=1 - frame["default"])
    assert list(split_frame(frame, params.split, schema).test.index) == list(
        split_frame(relabelled, params.split, schema).test.index
    )


def test_data_without_event_times_splits_by_hash_and_refuses_a_time_split():
    params = make_params(**{"data.schema.event_time": None})
    frame = coerce_frame(make_credit_frame(1_000), make_params().data.schema).drop(
        columns=["event_time"]
    )
    parts = split_frame(frame, params.split, params.data.schema)
    assert len(parts.train) + len(parts.val) + len(parts.test) == 1_000
    with pytest.raises(ParamsError, match=r"split\.method: 'time' needs data\.schema\.event_time"):
        make_params(**{"data.schema.event_time": None, "split.method": "time"})
