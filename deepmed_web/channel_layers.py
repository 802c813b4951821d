"""Channel layer for the embedded (single-process) mode.

Channels' InMemoryChannelLayer keeps asyncio queues bound to the server's event loop.
In embedded mode the Celery worker runs in a thread with its own loop, and waking a
queue's waiter from a foreign loop is not thread-safe (the message may sit unseen).
This layer hands every send coming from another loop to the server loop.
"""

from __future__ import annotations

import asyncio

from channels.layers import InMemoryChannelLayer


class ThreadSafeInMemoryChannelLayer(InMemoryChannelLayer):
    _server_loop: asyncio.AbstractEventLoop | None = None

    async def receive(self, channel):
        # Receivers are consumers, which always run on the server's loop.
        self._server_loop = asyncio.get_running_loop()
        return await super().receive(channel)

    async def _on_server_loop(self, coro):
        loop = self._server_loop
        if loop is None or loop is asyncio.get_running_loop() or loop.is_closed():
            return await coro
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        return await asyncio.wrap_future(future)

    async def send(self, channel, message):
        return await self._on_server_loop(super().send(channel, message))

    async def group_send(self, group, message):
        return await self._on_server_loop(super().group_send(group, message))
