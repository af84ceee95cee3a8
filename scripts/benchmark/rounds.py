"""The 16-client windows of phases 1, 4, 5 and 6, measured side by side in rounds.

The targets are ratios of figures measured in different windows (the ledger's commands/s
over the raw commit limit, over the baseline; HTTP over the ledger). On the benchmark's
virtual machine the speed of the cores drifts from minute to minute: the same 16-client
window of the ledger measured 4,572 and 6,136 commands/s a few minutes apart, at the same
CPU use (2026-12-07, 6 s windows). Measured one phase after the other, a ratio carried
whatever the machine did between its two windows. So each of these phases first sets up
what it measures and keeps it ready (a `Contender`); then every round runs one window of
each in turn, and a figure is the median of its rounds, its latencies those of every
round together.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmark.cpu import Usage
from benchmark.stats import LoadResult, median


@dataclass
class Window:
    """One round's window of one contender: its 16 clients, and what it measured beside."""

    result: LoadResult
    usage: Usage | None = None
    beside: dict[str, Any] = field(default_factory=dict)


@dataclass
class Contender:
    """A phase's 16-client window, ready to run (`measure(seconds)`), and what it makes of
    its rounds' windows once all are in (`record`)."""

    name: str
    measure: Callable[[float], Window]
    record: Callable[[list[Window]], None]


def run_rounds(contenders: list[Contender], rounds: int, seconds: float,
               failed: Callable[[str, Exception], None],
               said: Callable[[str], None] = lambda text: None,
               settle: Callable[[], None] = lambda: None) -> None:
    """`rounds` rounds of one `seconds` window per contender, in turn, each after `settle`
    (outside the window); then each contender records.

    A contender whose window fails is reported through `failed` and takes no further part
    (nor records); the others carry on."""
    assert rounds >= 1 and seconds > 0, "at least one window, of some length"
    windows: dict[str, list[Window]] = {contender.name: [] for contender in contenders}
    live = list(contenders)
    for number in range(1, rounds + 1):
        for contender in list(live):
            try:
                settle()
                window = contender.measure(seconds)
            except Exception as error:  # reported; the other contenders carry on
                failed(contender.name, error)
                live.remove(contender)
                continue
            windows[contender.name].append(window)
            said(f"round {number}/{rounds}, {contender.name}: "
                 f"{window.result.rate:,.0f}/s")
    for contender in live:
        try:
            contender.record(windows[contender.name])
        except Exception as error:  # reported like a failed window
            failed(contender.name, error)


def rate(results: list[LoadResult]) -> float:
    """The median of the windows' rates."""
    return median([result.rate for result in results])


def merged(results: list[LoadResult]) -> LoadResult:
    """The windows together: every latency, every error, the operations and seconds summed
    (for percentiles and counts; the rate a figure reports is `rate`, the median)."""
    assert results, "at least one window"
    errors: Counter[str] = Counter()
    for result in results:
        errors.update(result.errors)
    return LoadResult(results[0].clients, sum(result.seconds for result in results),
                      sum(result.completed for result in results),
                      [latency for result in results for latency in result.latencies], errors)


def mean_usage(usages: list[Usage | None]) -> Usage | None:
    """The cores used on average over the windows (None when any is unknown)."""
    known = [usage for usage in usages if usage is not None]
    if not known or len(known) < len(usages):
        return None
    count = len(known)
    return Usage(sum(u.own for u in known) / count, sum(u.postgres for u in known) / count,
                 sum(u.server for u in known) / count)


def described(what: str, results: list[LoadResult], seconds: float) -> str:
    """A figure's description, with the rounds it is the median of."""
    if len(results) == 1:
        return what
    rates = " / ".join(f"{result.rate:,.0f}" for result in results)
    return (f"{what}; median of {len(results)} interleaved {seconds:g} s windows "
            f"({rates})")
