import math

import pytest

from prodseg.bench.stats import Stats, percentile


def test_exact_values_on_one_to_ten():
    s = Stats(range(1, 11))
    assert (s.count, s.min, s.max) == (10, 1.0, 10.0)
    assert s.mean == 5.5
    assert s.p50 == pytest.approx(5.5)
    assert s.p90 == pytest.approx(9.1)
    assert s.p99 == pytest.approx(9.91)
    assert s.stddev == pytest.approx(math.sqrt(82.5 / 9))
    assert s.total == 55.0


def test_order_does_not_matter_and_values_are_kept():
    s = Stats([3.0, 1.0, 2.0])
    assert s.values == (3.0, 1.0, 2.0)
    assert s.sorted == (1.0, 2.0, 3.0)
    assert (s.p50, s.min, s.max) == (2.0, 1.0, 3.0)


def test_single_sample_has_zero_stddev():
    s = Stats([4.2])
    assert (s.p50, s.p99, s.stddev) == (4.2, 4.2, 0.0)


def test_matches_numpy_linear_percentiles():
    np = pytest.importorskip("numpy")
    values = [0.3, 7.0, 1.5, 2.25, 9.0, 4.0, 4.0]
    s = Stats(values)
    for q in (0, 10, 50, 90, 99, 100):
        assert percentile(s.sorted, q) == pytest.approx(float(np.percentile(values, q)))
    assert s.stddev == pytest.approx(float(np.std(values, ddof=1)))


def test_as_dict_fields():
    d = Stats([1, 2, 3, 4]).as_dict()
    assert d == {
        "count": 4,
        "min": 1.0,
        "p50": 2.5,
        "p90": 3.7,
        "p99": 3.97,
        "max": 4.0,
        "mean": 2.5,
        "stddev": round(math.sqrt(5 / 3), 4),
    }


def test_empty_and_out_of_range():
    with pytest.raises(ValueError):
        Stats([])
    with pytest.raises(ValueError):
        percentile((1.0,), 101)
