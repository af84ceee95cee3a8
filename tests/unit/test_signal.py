"""`group_commit.Signal`: how a queued command's caller learns it was answered."""

from __future__ import annotations

import threading

from ledger.group_commit import Signal


def test_a_wait_returns_once_another_thread_sets_it() -> None:
    signal = Signal()
    woken = threading.Event()

    def waiter() -> None:
        signal.wait()
        woken.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    assert not woken.wait(0.05), "still waiting before the set"
    assert not signal.is_set()
    signal.set()
    thread.join(timeout=10)
    assert woken.is_set() and signal.is_set()


def test_once_set_every_wait_returns_at_once_and_a_second_set_is_harmless() -> None:
    signal = Signal()
    signal.set()
    signal.set()
    signal.wait()
    signal.wait()
    assert signal.is_set()
