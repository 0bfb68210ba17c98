"""The table schema from params.yaml, as a pandera schema, and readable validation results.

pandera does the checking (dtypes, ranges, categories, nullability, missing-value
budget, duplicates, unexpected columns); this module only builds the schema from
:class:`pipeline.params.SchemaParams` and turns pandera's failure cases into one
line per (column, rule) with the number of rows that break it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from pipeline.params import ColumnSpec, SchemaParams

_DTYPES = {"int": "int64", "float": "float64", "category": "str"}
_MAX_EXAMPLES = 3
# pandera's built-in check names, in words.
_CHECK_WORDS = (
    (re.compile(r"greater_than_or_equal_to\((.*)\)"), "expected a value >= {}"),
    (re.compile(r"less_than_or_equal_to\((.*)\)"), "expected a value <= {}"),
    (re.compile(r"isin\(\[(.*)\]\)"), "expected one of {}"),
)


def _missing_budget(limit: float) -> pa.Check:
    return pa.Check(
        lambda series: bool(series.isna().mean() <= limit),
        element_wise=False,
        name=f"missing_fraction<={limit}",
        ignore_na=False,
    )


def _column_checks(spec: ColumnSpec, max_missing: float) -> list[pa.Check]:
    checks: list[pa.Check] = []
    if spec.min is not None:
        checks.append(pa.Check.ge(spec.min))
    if spec.max is not None:
        checks.append(pa.Check.le(spec.max))
    if spec.categories is not None:
        checks.append(pa.Check.isin(list(spec.categories)))
    if spec.nullable:
        checks.append(_missing_budget(max_missing))
    return checks


def build_schema(schema: SchemaParams) -> pa.DataFrameSchema:
    """Build the pandera schema for a full table (features, target, event time).

    Args:
        schema: The ``data.schema`` section of params.yaml.

    Returns:
        A strict schema that coerces values to the declared dtypes.
    """
    columns = {
        name: pa.Column(
            _DTYPES[spec.dtype],
            checks=_column_checks(spec, schema.max_missing_fraction),
            nullable=spec.nullable,
            coerce=True,
        )
        for name, spec in schema.columns.items()
    }
    columns[schema.target] = pa.Column("int64", pa.Check.isin([0, 1]), coerce=True)
    if schema.event_time is not None:
        columns[schema.event_time] = pa.Column("datetime64[ns]", coerce=True)
    unique = (
        None
        if schema.allow_duplicates
        else [*schema.columns, schema.target, *([schema.event_time] if schema.event_time else [])]
    )
    return pa.DataFrameSchema(columns, strict=True, unique=unique, report_duplicates="all")


@dataclass(frozen=True)
class Problem:
    """One broken rule: which column, which rule, how many rows, a few offending values."""

    column: str
    rule: str
    rows: int
    examples: tuple[str, ...] = ()

    def message(self) -> str:
        """One line naming the column, the rule and how many rows break it."""
        shown = f" (e.g. {', '.join(self.examples)})" if self.examples else ""
        if self.rows == 0:
            return f"{self.column}: {self.rule}{shown}"
        return f"{self.column}: {self.rule}: {self.rows} row(s){shown}"


@dataclass(frozen=True)
class ValidationReport:
    """Outcome of validating a table; written as reports/validation.json."""

    passed: bool
    n_rows: int
    n_columns: int
    problems: tuple[Problem, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (problems include their message)."""
        return {
            "passed": self.passed,
            "n_rows": self.n_rows,
            "n_columns": self.n_columns,
            "problems": [{**asdict(p), "message": p.message()} for p in self.problems],
        }


def _rule_name(check: str, column: str | None, schema: SchemaParams) -> str:
    if check == "column_in_dataframe":
        return "required column is missing"
    if check == "column_in_schema":
        return "column is not declared in params.yaml data.schema.columns"
    if check.startswith("coerce_dtype"):
        wanted = schema.columns[column].dtype if column in schema.columns else check
        return f"expected {wanted} values"
    if check == "not_nullable":
        return "missing values are not allowed"
    if check.startswith("missing_fraction"):
        return f"at most {schema.max_missing_fraction:.1%} of values may be missing"
    if check in {"field_uniqueness", "multiple_fields_uniqueness", "duplicates"}:
        return "duplicated rows are not allowed (data.schema.allow_duplicates is false)"
    for pattern, template in _CHECK_WORDS:
        match = pattern.fullmatch(check)
        if match:
            return template.format(match.group(1).replace("'", ""))
    return check


_UNIQUENESS_CHECKS = {"field_uniqueness", "multiple_fields_uniqueness", "duplicates"}


def _problems(errors: SchemaErrors, frame: pd.DataFrame, schema: SchemaParams) -> list[Problem]:
    cases = errors.failure_cases.copy()
    cases["column"] = cases["column"].where(cases["column"].notna(), None)
    # A column that could not be parsed gets one problem: its later checks only
    # repeat the parse failure (pandera reports the dtype and comparison errors too).
    unparsed = set(cases.loc[cases["check"].astype(str).str.startswith("coerce_dtype"), "column"])
    problems: list[Problem] = []
    duplicates = cases[cases["check"].isin(_UNIQUENESS_CHECKS)]
    if len(duplicates):
        rule = _rule_name("duplicates", None, schema)
        problems.append(Problem("<table>", rule, int(duplicates["index"].nunique())))
        cases = cases[~cases["check"].isin(_UNIQUENESS_CHECKS)]
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=True):
        column_name = None if pd.isna(column) else str(column)
        check_name = str(check)
        if column_name in unparsed and not check_name.startswith("coerce_dtype"):
            continue
        if check_name in {"column_in_dataframe", "column_in_schema"}:
            for value in sorted(str(v) for v in group["failure_case"]):
                problems.append(Problem(value, _rule_name(check_name, value, schema), 0))
            continue
        if check_name.startswith("missing_fraction") and column_name is not None:
            share = float(frame[column_name].isna().mean())
            rule = f"{_rule_name(check_name, column_name, schema)}, got {share:.1%}"
            problems.append(Problem(column_name, rule, int(frame[column_name].isna().sum())))
            continue
        if check_name.startswith("coerce_dtype") and group["failure_case"].isna().all():
            # NaN in a non-nullable int column fails the int cast, not a null check.
            rule = _rule_name("not_nullable", column_name, schema)
            problems.append(Problem(str(column_name), rule, int(group["index"].nunique())))
            continue
        values = group["failure_case"].astype(str).unique()[:_MAX_EXAMPLES]
        examples = tuple(repr(v) for v in values) if group["index"].notna().any() else ()
        rows = int(group["index"].nunique()) if group["index"].notna().any() else 0
        label = column_name or "<table>"
        problems.append(Problem(label, _rule_name(check_name, column_name, schema), rows, examples))
    return sorted(problems, key=lambda problem: (problem.column, problem.rule))


def validate_frame(
    frame: pd.DataFrame, schema: SchemaParams
) -> tuple[ValidationReport, pd.DataFrame | None]:
    """Validate a table against the schema.

    Args:
        frame: The raw table.
        schema: The ``data.schema`` section of params.yaml.

    Returns:
        The report, and the table coerced to the declared dtypes (``None`` when invalid).
    """
    try:
        valid = build_schema(schema).validate(frame, lazy=True)
    except SchemaErrors as errors:
        problems = tuple(_problems(errors, frame, schema))
        return ValidationReport(False, len(frame), frame.shape[1], problems), None
    return ValidationReport(True, len(frame), frame.shape[1]), valid


def coerce_frame(frame: pd.DataFrame, schema: SchemaParams) -> pd.DataFrame:
    """Return the table validated and coerced to the declared dtypes.

    Args:
        frame: A table that is expected to pass validation.
        schema: The ``data.schema`` section of params.yaml.

    Returns:
        The coerced table.

    Raises:
        ValueError: With every problem listed, when the table is invalid.
    """
    report, valid = validate_frame(frame, schema)
    if valid is None:
        details = "\n".join(f"  {p.message()}" for p in report.problems)
        raise ValueError(f"data does not match data.schema in params.yaml:\n{details}")
    return valid


def cast_frame(frame: pd.DataFrame, schema: SchemaParams) -> pd.DataFrame:
    """Cast a table that already passed validation to the declared dtypes, without re-checking.

    Args:
        frame: A table whose validation report passed for this schema.
        schema: The ``data.schema`` section of params.yaml.

    Returns:
        The table with feature, target and event-time columns in their declared dtypes.
    """
    dtypes = {name: _DTYPES[spec.dtype] for name, spec in schema.columns.items()}
    dtypes = {name: ("object" if kind == "str" else kind) for name, kind in dtypes.items()}
    cast = frame.astype({**dtypes, schema.target: "int64"})
    if schema.event_time is not None:
        cast[schema.event_time] = pd.to_datetime(cast[schema.event_time])
    return cast
