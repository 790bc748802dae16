"""`BatcherPool`: several batchers (inference processes of one model) behind one.

Each job goes to the running member with the fewest jobs in flight, so that each member
batches its share on its own cores. Small batches use many cores poorly, so on a CPU host
several processes with a few threads each decode more than one process with all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from seq2seq import SearchOptions
from serve.batching import Batcher, BatcherUnavailable, Ranked


class BatcherPool:
    """Members that all translate with the same model, seen as one `Batcher`."""

    def __init__(self, members: Sequence[Batcher]) -> None:
        self.members = list(members)
        self.jobs = [0] * len(self.members)
        """Jobs sent to each member so far."""
        self._in_flight = [0] * len(self.members)

    @property
    def alive(self) -> bool:
        """At least one member takes jobs."""
        return any(member.alive for member in self.members)

    @property
    def depth(self) -> int:
        """Jobs the members hold but do not decode yet."""
        return sum(member.depth for member in self.members)

    async def start(self) -> None:
        """Start every member (for processes: until their models are loaded)."""
        for member in self.members:
            await member.start()

    async def stop(self) -> None:
        """Stop every member."""
        await asyncio.gather(*(member.stop() for member in self.members))

    async def submit(self, sources: list[list[int]], options: SearchOptions) -> Ranked:
        """Translate `sources` in the least busy running member."""
        running = [number for number, member in enumerate(self.members) if member.alive]
        if not running:
            raise BatcherUnavailable("the inference process is starting again")
        chosen = min(running, key=lambda number: self._in_flight[number])
        self._in_flight[chosen] += 1
        self.jobs[chosen] += 1
        try:
            return await self.members[chosen].submit(sources, options)
        finally:
            self._in_flight[chosen] -= 1
