"""The benchmark's interleaved 16-client windows (`scripts/benchmark/rounds.py`): each round
runs one window of every contender in turn; a figure is the median of its rounds; one
contender failing does not take the others with it."""

from __future__ import annotations

import itertools
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from benchmark import report, rounds
from benchmark.cpu import Usage
from benchmark.stats import Figures, LoadResult


def result(completed: int, seconds: float = 2.0, latency: float = 0.001,
           errors: Counter[str] | None = None) -> LoadResult:
    return LoadResult(16, seconds, completed, [latency] * completed, errors or Counter())


def test_each_round_runs_every_contender_in_turn_and_each_records_its_windows() -> None:
    order: list[str] = []
    recorded: dict[str, list[float]] = {}

    def contender(name: str, rates: list[int]) -> rounds.Contender:
        left = iter(rates)

        def measure(seconds: float) -> rounds.Window:
            order.append(name)
            return rounds.Window(result(next(left) * 2, seconds))

        def record(windows: list[rounds.Window]) -> None:
            recorded[name] = [window.result.rate for window in windows]

        return rounds.Contender(name, measure, record)

    rounds.run_rounds([contender("a", [1, 2, 3]), contender("b", [4, 5, 6])], 3, 2.0,
                      lambda name, error: pytest.fail(f"{name}: {error}"))

    assert order == ["a", "b", "a", "b", "a", "b"]
    assert recorded == {"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0]}


def test_a_contender_that_fails_drops_out_and_the_others_carry_on() -> None:
    failures: list[str] = []
    recorded: list[str] = []
    calls = Counter[str]()

    def measure_ok(seconds: float) -> rounds.Window:
        calls["ok"] += 1
        return rounds.Window(result(10))

    def measure_broken(seconds: float) -> rounds.Window:
        calls["broken"] += 1
        if calls["broken"] == 2:
            raise RuntimeError("server died")
        return rounds.Window(result(10))

    rounds.run_rounds([
        rounds.Contender("broken", measure_broken, lambda windows: recorded.append("broken")),
        rounds.Contender("ok", measure_ok, lambda windows: recorded.append("ok")),
    ], 3, 1.0, lambda name, error: failures.append(f"{name}: {error}"))

    assert failures == ["broken: server died"]
    assert calls == {"ok": 3, "broken": 2}
    assert recorded == ["ok"]


def test_the_rate_is_the_median_of_the_windows_and_latencies_are_pooled() -> None:
    windows = [result(100, latency=0.001), result(300, latency=0.003),
               result(120, latency=0.002, errors=Counter({"Refused": 2}))]

    together = rounds.merged(windows)

    assert rounds.rate(windows) == 60.0  # the median of 50, 150 and 60 per second
    assert together.completed == 520 and together.seconds == 6.0
    assert together.errors == Counter({"Refused": 2})
    assert together.p(0.5) == pytest.approx(3.0)  # 300 of the 520 latencies are 3 ms
    assert together.p(0.1) == pytest.approx(1.0)


def test_cpu_use_is_averaged_and_unknown_when_any_window_did_not_measure_it() -> None:
    mean = rounds.mean_usage([Usage(0.5, 0.2, 0.0), Usage(0.7, 0.4, 1.0)])
    assert mean is not None
    assert (mean.own, mean.postgres, mean.server) == pytest.approx((0.6, 0.3, 0.5))
    assert rounds.mean_usage([Usage(0.5, 0.2, 0.0), None]) is None


def test_a_figure_measured_in_rounds_keeps_its_reserved_place_or_is_dropped() -> None:
    figures = Figures()
    figures.reserve("first", "never")
    figures.add("later", 2.0, "ops/s")
    figures.add("first", 1.0, "ops/s")
    figures.drop_unfilled()

    assert list(figures.items) == ["first", "later"]
    assert figures.value("first") == 1.0


def test_a_ratio_of_two_figures_measured_in_rounds_is_the_median_of_the_rounds_ratios() -> None:
    figures = Figures()
    # The machine slows in the third round: the ratio of the medians would pair the
    # ledger's second round (5,000) with the raw limit's third (3,500).
    figures.add("ledger_commands", 5000.0, "commands/s")
    figures.add("raw_insert_commit", 5000.0, "transactions/s")
    figures.rounds["ledger_commands"] = [4000.0, 5000.0, 5600.0]
    figures.rounds["raw_insert_commit"] = [5000.0, 6000.0, 3500.0]
    ratio = next(r for r in report.RATIOS if r.key == "ledger_commands/raw_insert_commit")

    assert ratio.value(figures) == pytest.approx(0.8333, abs=1e-4)  # 0.8, 0.833, 1.6
    assert ratio.paired(figures)

    figures.rounds["raw_insert_commit"] = [5000.0, 6000.0]  # a round missing: not paired
    assert ratio.value(figures) == pytest.approx(1.0)
    assert not ratio.paired(figures)


def test_every_window_is_preceded_by_settling_outside_it() -> None:
    happened: list[str] = []

    def measure(seconds: float) -> rounds.Window:
        happened.append("window")
        return rounds.Window(result(1))

    rounds.run_rounds([rounds.Contender("a", measure, lambda windows: None),
                       rounds.Contender("b", measure, lambda windows: None)], 2, 1.0,
                      lambda name, error: pytest.fail(f"{name}: {error}"),
                      settle=lambda: happened.append("settle"))

    assert happened == ["settle", "window"] * 4


def test_a_bin_loaded_fewer_times_has_its_loads_spread_over_all_the_turns() -> None:
    from benchmark.history import load_turns

    order = load_turns([11, 51])
    hot = [turn for turn, index in order if index == 0]
    cold = [turn for turn, index in order if index == 1]

    assert len(hot) == 11 and cold == list(range(51))
    assert hot[0] >= 3 and hot[-1] == 50  # not all at the start
    gaps = [later - earlier for earlier, later in itertools.pairwise(hot)]
    assert min(gaps) >= 4 and max(gaps) <= 5
    assert order == sorted(order)  # in turn, each turn's loads in the bins' order
