"""When a send started, for ``gmp_send_duration_seconds``.

The event hooks carry no duration, so the plugin measures what the hooks let it see: the clock
starts when ``mailproxy_prepare_message`` runs (the plugin's implementation is ``trylast``, so
after every other plugin changed or signed the MIME message; next come serialization, the
transport choice and ``Transport.send``) and stops when ``mailproxy_message_sent`` /
``_failed`` / ``_deferred`` reports that attempt's outcome. The kernel emits those hooks after
the outcome was committed, so the measurement also includes serializing the message, the wait
until the dispatcher writes the outcome, and the event hooks queued before this one: a few
milliseconds on an idle instance, more under load. The README says so; a true transport time
needs the kernel to time ``Transport.send`` and hand the duration to the event hooks.

Attempts are keyed by the identity of the ``Message`` object: the dispatcher hands the same
object to ``prepare_message`` and to the outcome hook, and every attempt claims a new one, so
two apps in one process never mix their clocks. Entries whose outcome never arrives (an outcome
write that failed, a send cut short at shutdown) are dropped after ``max_age`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mailproxy_core import Message

MAX_AGE = 900.0
"""Seconds after which an attempt whose outcome never arrived is forgotten."""

PRUNE_EVERY = 60.0
"""Seconds between two sweeps for forgotten attempts."""


class SendClock:
    """Start times of attempts in flight, keyed by their ``Message`` object."""

    def __init__(
        self, *, max_age: float = MAX_AGE, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self._max_age = max_age
        self._clock = clock
        # id(message) -> (message, start). Holding the message keeps its id from being reused
        # by another object while the entry exists.
        self._started: dict[int, tuple[Message, float]] = {}
        self._last_prune = clock()

    def start(self, message: Message) -> None:
        """The attempt for ``message`` is about to reach its transport."""
        now = self._clock()
        self._started[id(message)] = (message, now)
        if now - self._last_prune >= PRUNE_EVERY:
            self._prune(now)

    def stop(self, message: Message) -> float | None:
        """Seconds since ``start(message)``; ``None`` if the attempt never reached a transport."""
        entry = self._started.pop(id(message), None)
        if entry is None:
            return None
        return max(0.0, self._clock() - entry[1])

    def __len__(self) -> int:
        return len(self._started)

    def _prune(self, now: float) -> None:
        self._last_prune = now
        expired = [key for key, (_m, start) in self._started.items() if now - start > self._max_age]
        for key in expired:
            del self._started[key]


SEND_CLOCK = SendClock()
"""The process's clock. ``prepare_message`` is not handed the kernel, so the clock cannot live
in an app's metrics; keying by message object keeps apps apart all the same."""
