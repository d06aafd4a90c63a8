"""The hops stage's typing, checked against what it must equal."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from logpath.hops import _MONTHS, _month_times, _month_times_by_pandas


def _number(low: int, high: int) -> st.SearchStrategy[str]:
    """A number as a header may print it: one digit or two (zero-padded), past the valid
    range on both sides."""
    return st.builds(
        lambda n, padded: f"{n:02d}" if padded else str(n), st.integers(low, high), st.booleans()
    )


# "Jan 8 21:40:01" as the grammar's month, day and clock make it, with or without a fraction,
# valid or not (a 30th of February, hour 24, second 60, day 0, a fraction of 10 digits)
MONTH_TIMES = st.builds(
    lambda month, day, hour, minute, second, fraction: (
        f"{month} {day} {hour}:{minute}:{second}{fraction}"
    ),
    st.sampled_from(_MONTHS),
    _number(0, 32),
    _number(0, 25),
    _number(0, 61),
    _number(0, 61),
    st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,12}", fullmatch=True)),
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(MONTH_TIMES, min_size=1, max_size=30),
    st.one_of(st.none(), st.integers(1600, 2300)),
    st.datetimes(datetime(1700, 1, 1), datetime(2250, 12, 31), timezones=st.just(UTC)),
)
def test_month_times_read_without_pandas_are_those_pandas_reads(
    texts: list[str], year: int | None, mtime: datetime
) -> None:
    """Each plain time is read in Python (``_plain_month_time``), the others by pandas: the
    times, and the texts that are no time (NaT, a rejected line), are pandas' own."""
    read = _month_times(texts, year, mtime)
    assert read.dtype == "datetime64[us, UTC]"
    assert read.equals(_month_times_by_pandas(texts, year, mtime))


def test_month_times_of_a_leap_day_and_a_fraction() -> None:
    """A 29th of February in a leap year (and not in the year before it), nanoseconds cut to
    microseconds, as pandas reads them."""
    january_2025 = datetime(2025, 1, 9, tzinfo=UTC)  # February: 2024's, a leap year
    read = _month_times(
        ["Feb 29 23:59:59.999999999", "Feb 29 00:00:00", "Mar 1 00:00:00.5"], None, january_2025
    )
    assert [str(t) for t in read] == [
        "2024-02-29 23:59:59.999999+00:00",
        "2024-02-29 00:00:00+00:00",
        "2024-03-01 00:00:00.500000+00:00",
    ]
    assert read.isna().tolist() == [False, False, False]
    assert _month_times(["Feb 29 00:00:00"], 2023, january_2025).isna().tolist() == [True]
