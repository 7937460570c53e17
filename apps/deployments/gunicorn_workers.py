"""A gunicorn ``gthread`` worker that spreads keep-alive connections evenly over the workers.

With gunicorn's own ``gthread`` all workers accept from one listening socket, and a keep-alive client
keeps the worker that accepted its connection for as long as it stays connected. A burst of new
connections (a load balancer's pool, a client opening 8 connections at once) can land mostly on one
worker while the others idle, and which way it falls changes from one burst to the next.
``SO_REUSEPORT`` (``GUNICORN_REUSE_PORT``) does not fix that: the kernel hashes each connection to a
worker's socket, so 8 connections land 4/4, 5/3 or 6/2 by chance.

``BalancedThreadWorker`` keeps gthread's loop and adds one rule: a worker accepts a new connection only
while it holds no more open connections than the least loaded other worker (ties accept). Every worker
publishes its count in a small table in shared memory that the master maps before forking; a worker
that left (or was killed) is dropped from the table when it is found dead. With one listening socket a
worker that stops accepting leaves the connection to the others, so 8 connections end up 4/4 and 64
end up 32/32, in every burst. With ``reuse_port`` each worker has its own socket and must take what the
kernel hands it, so the rule is off.

No Django import: the benchmark's bare WSGI server uses the same worker.
"""

from __future__ import annotations

import mmap
import os
import struct

from gunicorn.workers.gthread import ThreadWorker

SLOTS = 256  # workers per server (live ones; a slot is reused after its worker died)
# The table: a header (slots in use so far: the high-water mark) and per slot (pid, open connections);
# pid 0: free, -1: reserved for a worker being forked.
_HEAD = struct.Struct("q")
_SLOT = struct.Struct("qq")
REBALANCE_S = 0.01  # how often a worker that holds back re-checks the table
_table: mmap.mmap | None = None
_table_owner: int | None = None  # the master that mapped it


def _shared_table() -> mmap.mmap:
    """The connection table, mapped once in the master (anonymous shared memory inherited by fork)."""
    global _table, _table_owner
    if _table is None or _table_owner not in (os.getpid(), os.getppid()):
        _table = mmap.mmap(-1, _HEAD.size + SLOTS * _SLOT.size)  # MAP_SHARED | MAP_ANONYMOUS, zero-filled
        _table_owner = os.getpid()
    return _table


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process reused the pid
        return False
    return True


class BalancedThreadWorker(ThreadWorker):
    """gthread with connections spread evenly over the workers (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        # Runs in the master, before the fork: claim a free slot (the master forks one worker at a time).
        self._table = _shared_table()
        self._slot = self._claim_slot()
        self._conns = 0
        self._balance = False
        self._pid = 0  # this worker's pid, once forked
        super().__init__(*args, **kwargs)
        self._balance = not getattr(self.cfg, "reuse_port", False) and self._slot is not None

    def _claim_slot(self) -> int | None:
        table = self._table
        for i in range(SLOTS):
            pid, _ = _SLOT.unpack_from(table, _HEAD.size + i * _SLOT.size)
            if pid == 0 or (pid > 0 and not _alive(pid)):
                _SLOT.pack_into(table, _HEAD.size + i * _SLOT.size, -1, 0)
                if i >= _HEAD.unpack_from(table, 0)[0]:
                    _HEAD.pack_into(table, 0, i + 1)
                return i
        return None  # more than SLOTS workers: this one accepts like plain gthread

    def release_slot(self) -> None:
        """Free this worker's slot (the master calls it from ``child_exit``; the worker itself on leaving)."""
        if self._slot is not None:
            _SLOT.pack_into(self._table, _HEAD.size + self._slot * _SLOT.size, 0, 0)

    def init_process(self):
        self._pid = os.getpid()
        if self._slot is not None:
            _SLOT.pack_into(self._table, _HEAD.size + self._slot * _SLOT.size, self._pid, 0)
        super().init_process()

    # gthread's loop decides ``can_accept = self.nr_conns < self.worker_connections`` once per turn; both
    # are properties here, so that test also applies the balance rule without copying the loop.
    @property
    def nr_conns(self) -> int:
        return self._conns

    @nr_conns.setter
    def nr_conns(self, value: int) -> None:
        self._conns = value
        if self._slot is not None:
            struct.pack_into("q", self._table, _HEAD.size + self._slot * _SLOT.size + 8, value)

    @property
    def worker_connections(self) -> int:
        limit = self._limit
        if not self._balance or self._conns >= limit or not self.alive:
            return limit
        return self._conns + 1 if self._fewest() else self._conns

    @worker_connections.setter
    def worker_connections(self, value: int) -> None:
        self._limit = value

    def _fewest(self) -> bool:
        """True while no other live worker holds fewer open connections than this one."""
        mine, me, table = self._conns, self._pid, self._table
        used = _HEAD.unpack_from(table, 0)[0]
        flat = struct.unpack_from(f"{2 * used}q", table, _HEAD.size)
        for i in range(used):
            pid, conns = flat[2 * i], flat[2 * i + 1]
            if pid > 0 and pid != me and conns < mine and conns < self._limit:
                if _alive(pid):
                    return False
                _SLOT.pack_into(table, _HEAD.size + i * _SLOT.size, 0, 0)  # a worker that died: free its slot
        return True

    def wait_for_and_dispatch_events(self, timeout):
        # Not accepting because another worker holds fewer connections: look again soon (that worker may have
        # caught up meanwhile), instead of after gthread's idle turn of a second.
        if self._balance and not self._accepting and self._conns < self._limit:
            timeout = min(timeout, REBALANCE_S)
        super().wait_for_and_dispatch_events(timeout)

    def run(self):
        try:
            super().run()
        finally:
            self.release_slot()
