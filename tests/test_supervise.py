"""modelmgr.supervise: the restart policy, and a real child process restarted with backoff
until a crash loop is given up (time driven by the test, processes real)."""

from __future__ import annotations

import sys

from modelmgr.supervise import RestartPolicy, Supervised, restart_delay

POLICY = RestartPolicy(max_restarts=2, window_s=60.0, backoff_s=0.5, backoff_max_s=30.0)


def test_backoff_doubles_up_to_its_cap_then_gives_up():
    policy = RestartPolicy(max_restarts=7, backoff_s=0.5, backoff_max_s=10.0)
    assert [restart_delay(n, policy) for n in range(8)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        10.0,
        10.0,
        None,
    ]


def crashing(lines: list[str], policy: RestartPolicy = POLICY) -> Supervised:
    command = [sys.executable, "-c", "import sys; sys.exit(3)"]
    return Supervised("worker", command, env={}, policy=policy, say=lines.append)


def died(child: Supervised) -> None:
    child.proc.wait(timeout=30)


def test_a_dead_child_is_restarted_after_its_backoff_then_a_crash_loop_is_given_up():
    lines: list[str] = []
    child = crashing(lines)
    first = child.start()
    died(child)
    child.poll(now=100.0)
    assert lines[-1] == (
        "worker exited with status 3; restarting it in 0.5 s (restart 1 of at most 2 within 60 s)"
    )
    child.poll(now=100.4)
    assert child.proc is None  # still backing off
    child.poll(now=100.5)
    assert child.proc is not None and child.proc.pid != first.pid
    died(child)
    child.poll(now=101.0)
    assert "restarting it in 1 s (restart 2 of at most 2" in lines[-1]
    child.poll(now=102.0)
    died(child)
    child.poll(now=103.0)
    assert child.gave_up and child.proc is None
    assert lines[-1].startswith("worker exited with status 3 after 2 restarts within 60 s")
    assert "crash loop" in lines[-1] and "MODELMGR_WORKER_MAX_RESTARTS=2" in lines[-1]
    child.poll(now=200.0)
    assert child.proc is None  # given up for good


def test_restarts_older_than_the_window_are_forgiven():
    lines: list[str] = []
    child = crashing(lines)
    child.start()
    for now in (0.0, 1000.0, 2000.0, 3000.0):
        died(child)
        child.poll(now=now)
        assert "restarting it in 0.5 s (restart 1 of" in lines[-1]
        child.poll(now=now + 1)
    assert not child.gave_up
    died(child)
