"""Keep a child process running: restart it with exponential backoff when it dies, and
stop trying after too many deaths in a window (a crash loop), saying why in one line.

`manage.py runall` supervises the inference worker with this, so a killed or crashed
worker (and the serving listener in it) comes back on its own while the web process
keeps serving pages and the API (predictions answer 503 with Retry-After meanwhile).
The restarted worker restores what the database says (inference.reconcile, on start).

The policy is a pure function (``restart_delay``); ``Supervised.poll`` is one step of
the supervision loop, called by the owner's loop with the time, so tests drive both
without sleeping.
"""

from __future__ import annotations

import subprocess
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    max_restarts: int = 5  # restarts allowed within window_s before giving up
    window_s: float = 300.0
    backoff_s: float = 0.5  # the first restart's delay; doubled for each recent one
    backoff_max_s: float = 30.0


def restart_delay(recent_restarts: int, policy: RestartPolicy) -> float | None:
    """Seconds to wait before the next restart, after ``recent_restarts`` restarts
    within the window; None when that is the limit (a crash loop: give up)."""
    if recent_restarts >= policy.max_restarts:
        return None
    return min(policy.backoff_max_s, policy.backoff_s * 2**recent_restarts)


class Supervised:
    """One child process under supervision (``start``, then ``poll`` in a loop)."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: dict[str, str],
        policy: RestartPolicy,
        say: Callable[[str], None],
        spawn: Callable[..., subprocess.Popen] = subprocess.Popen,
    ):
        self.name = name
        self.command = list(command)
        self.env = env
        self.policy = policy
        self.say = say
        self.spawn = spawn
        self.proc: subprocess.Popen | None = None
        self.restarts: deque[float] = deque()  # when each restart happened
        self.restart_at: float | None = None
        self.gave_up = False

    def start(self) -> subprocess.Popen:
        self.proc = self.spawn(self.command, env=self.env)
        return self.proc

    def poll(self, now: float | None = None) -> None:
        """One step: notice a death and schedule the restart, or restart when due."""
        now = time.monotonic() if now is None else now
        if self.gave_up:
            return
        if self.proc is not None:
            code = self.proc.poll()
            if code is None:
                return
            self.proc = None
            self._died(code, now)
        elif self.restart_at is not None and now >= self.restart_at:
            self.restart_at = None
            self.restarts.append(now)
            self.start()
            self.say(f"{self.name} restarted (pid {self.proc.pid})")

    def _died(self, code: int, now: float) -> None:
        while self.restarts and now - self.restarts[0] > self.policy.window_s:
            self.restarts.popleft()
        recent = len(self.restarts)
        delay = restart_delay(recent, self.policy)
        if delay is None:
            self.gave_up = True
            self.say(
                f"{self.name} exited with status {code} after {recent} restarts within "
                f"{self.policy.window_s:g} s: not restarting it again (a crash loop; see its "
                f"log above; limit MODELMGR_WORKER_MAX_RESTARTS={self.policy.max_restarts})"
            )
            return
        self.restart_at = now + delay
        self.say(
            f"{self.name} exited with status {code}; restarting it in {delay:g} s "
            f"(restart {recent + 1} of at most {self.policy.max_restarts} within "
            f"{self.policy.window_s:g} s)"
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
