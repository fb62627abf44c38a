from prodseg.bench.interleave import interleaved, speed_ratio
from prodseg.bench.stats import Stats


def test_interleaved_alternates_and_pools():
    order = []

    def make(name, value):
        def measure():
            order.append(name)
            return [value, value + 1]

        return measure

    res = interleaved({"a": make("a", 1.0), "b": make("b", 10.0)}, rounds=3)
    assert order == ["a", "b"] * 3
    assert res["a"].count == 6 and res["a"].p50 == 1.5
    assert speed_ratio(res["a"], res["b"]) == 10.5 / 1.5
    assert speed_ratio(Stats([2.0]), Stats([2.0])) == 1.0
