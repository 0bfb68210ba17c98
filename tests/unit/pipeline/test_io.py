import pytest

from pipeline.io import atomic_path, read_table, write_json


def test_failed_write_leaves_the_previous_file_intact(tmp_path):
    target = tmp_path / "metrics.json"
    write_json({"a": 1}, target)

    def crash_while_writing() -> None:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("stage crashed")

    with pytest.raises(RuntimeError, match="stage crashed"):
        crash_while_writing()
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert list(tmp_path.iterdir()) == [target]


def test_json_is_byte_stable_whatever_the_key_order(tmp_path):
    write_json({"b": 1, "a": 2}, tmp_path / "x.json")
    write_json({"a": 2, "b": 1}, tmp_path / "y.json")
    assert (tmp_path / "x.json").read_bytes() == (tmp_path / "y.json").read_bytes()


def test_read_table_names_file_and_rule(tmp_path):
    with pytest.raises(ValueError, match=r"data\.xlsx: expected a \.csv or \.parquet file"):
        read_table(tmp_path / "data.xlsx")
    with pytest.raises(ValueError, match="file not found"):
        read_table(tmp_path / "data.csv")
