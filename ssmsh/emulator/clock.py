"""The emulator's clock: wall-clock time plus an offset that tests can advance.

State Manager schedules (``rate(30 minutes)``, ``cron(...)``), Automation's ``aws:sleep``
and its steps' ``timeoutSeconds``, and the times Run Command, Automation and State
Manager report (``RequestedDateTime``, ``ExecutionStartTime``, ``CreatedTime``...) all
read this clock. :meth:`EmulatorClock.advance` moves it forward at once: whatever waits
for a time that is now past wakes up, so a test sees a 30-minute schedule fire or a
7-day approval time out without sleeping. Real time still passes as usual.

Waits (:meth:`EmulatorClock.sleep_until`) are asyncio waits on the emulator's loop;
``advance`` must be called on that loop too (``EmulatorThread.call`` in the tests).
Session tokens and the agent keep using real time: nothing there is scheduled.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

__all__ = ["EmulatorClock"]


class EmulatorClock:
    """Seconds since the epoch, as the emulator sees them."""

    def __init__(self, offset: float = 0.0) -> None:
        #: Seconds added to the wall clock (only grows, through :meth:`advance`).
        self.offset = offset
        self._wakeups: set[asyncio.Event] = set()

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward; every wait now due ends."""
        if seconds < 0:
            raise ValueError("the emulator's clock only moves forward")
        self.offset += seconds
        for event in list(self._wakeups):
            event.set()

    async def sleep_until(self, when: float) -> None:
        """Return once :meth:`now` has reached ``when`` (at once if it has)."""
        while (remaining := when - self.now()) > 0:
            event = asyncio.Event()
            self._wakeups.add(event)
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await event.wait()
            finally:
                self._wakeups.discard(event)

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self.now() + seconds)
