"""The store pauses cyclic garbage collection while it builds a batch, across threads."""

from __future__ import annotations

import gc
import threading

from hub.store.eventstore import gc_paused


def test_overlapping_pauses_resume_collection_when_the_last_ends():
    assert gc.isenabled()
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with gc_paused():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other)
    with gc_paused():
        t.start()
        inside.wait(10)
    assert not gc.isenabled()  # the other thread is still in its batch
    release.set()
    t.join(10)
    assert gc.isenabled()


def test_collection_left_off_stays_off():
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
