"""What the inbox settled recently, so a repeat of it is settled the same way and skipped.

The hub sets the same ``<sender>/<distribution_id>`` message id on every copy of a message; a
copy seen again (the broker redelivering it, or a hub process repeating what a stopped one had
already published, marked ``x-liaison-possible-repeat``) is dropped by its id. Kept in memory
by default, which covers the life of the process; with ``dedupe_file`` in a SQLite file, which
covers restarts of the process and every process of the organisation that shares the file.

The file keeps an id once its settle is written, before the broker hears of the ack: a process
that stops after that and before the ack is taken gets the message again from the broker and
drops it, as the caller has handled it. An id written, then the process killed, then a power
cut before the operating system wrote the file out may be forgotten (SQLite's WAL journal with
``synchronous=NORMAL``: a commit costs no disk flush); a restarted process keeps all of them.
"""

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from liaison.sdk.dedupe import DedupeWindow
from liaison.sdk.errors import InvalidArgument

#: Expired rows are swept out every this many settles (and when the file is opened).
SWEEP_EVERY = 1000


class SettledIds(Protocol):
    """Message ids settled recently and how: acknowledged or rejected."""

    def outcome(self, message_id: str) -> bool | None:
        """``True`` if rejected, ``False`` if acknowledged, ``None`` if not settled recently."""
        ...

    def remember(self, message_id: str, *, rejected: bool) -> None:
        """Keep ``message_id`` as settled now (again: the later settle counts)."""
        ...

    def close(self) -> None:
        """Let go of what the store holds open."""
        ...


class SettledInMemory:
    """The default: two dedupe windows in this process, lost when it ends."""

    def __init__(
        self, *, seconds: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._acked = DedupeWindow(seconds=seconds, max_entries=max_entries, clock=clock)
        self._rejected = DedupeWindow(seconds=seconds, max_entries=max_entries, clock=clock)

    def outcome(self, message_id: str) -> bool | None:
        """``True`` if rejected, ``False`` if acknowledged, ``None`` if not settled recently."""
        if message_id in self._rejected:
            return True
        if message_id in self._acked:
            return False
        return None

    def remember(self, message_id: str, *, rejected: bool) -> None:
        """Keep ``message_id`` as settled now (again: the later settle counts)."""
        (self._rejected if rejected else self._acked).add(message_id)
        (self._acked if rejected else self._rejected).discard(message_id)

    def close(self) -> None:
        """Nothing is held open."""


class SettledFile:
    """Settled ids in a SQLite file: they outlive the process and are shared by every process
    that opens the same file (SQLite locks it; readers never wait for a writer).

    The same bounds as in memory: an id counts for ``seconds`` (wall clock, as it must hold
    across restarts) and at most ``max_entries`` of the newest ids are kept.
    """

    def __init__(
        self,
        path: "str | os.PathLike[str]",
        *,
        seconds: float,
        max_entries: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self._seconds = seconds
        self._max = max_entries
        self._clock = clock
        self._since_sweep = 0
        if self.path.is_dir():
            raise InvalidArgument(f"dedupe_file {self.path} is a directory, not a file")
        if not self.path.parent.is_dir():
            raise InvalidArgument(f"dedupe_file {self.path}: its directory does not exist")
        # Who received what is nobody else's business: the file is the owner's alone.
        self.path.touch(mode=0o600, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS settled ("
                " message_id TEXT PRIMARY KEY, rejected INTEGER NOT NULL, at REAL NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS settled_at ON settled (at)")
            self._sweep()
        except sqlite3.DatabaseError as exc:
            raise InvalidArgument(
                f"dedupe_file {self.path} is not a dedupe file the SDK can use ({exc}); "
                "give a new path or move this file away"
            ) from exc

    def outcome(self, message_id: str) -> bool | None:
        """``True`` if rejected, ``False`` if acknowledged, ``None`` if not settled recently."""
        row = self._db.execute(
            "SELECT rejected FROM settled WHERE message_id = ? AND at > ?",
            (message_id, self._clock() - self._seconds),
        ).fetchone()
        return None if row is None else bool(row[0])

    def remember(self, message_id: str, *, rejected: bool) -> None:
        """Keep ``message_id`` as settled now (again: the later settle counts)."""
        self._db.execute(
            "INSERT INTO settled (message_id, rejected, at) VALUES (?, ?, ?)"
            " ON CONFLICT (message_id) DO UPDATE SET rejected = excluded.rejected,"
            " at = excluded.at",
            (message_id, int(rejected), self._clock()),
        )
        self._since_sweep += 1
        if self._since_sweep >= SWEEP_EVERY:
            self._sweep()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM settled").fetchone()[0])

    def close(self) -> None:
        """Close the file (what was remembered stays in it)."""
        self._db.close()

    def _sweep(self) -> None:
        self._since_sweep = 0
        self._db.execute("DELETE FROM settled WHERE at <= ?", (self._clock() - self._seconds,))
        self._db.execute(
            "DELETE FROM settled WHERE message_id NOT IN"
            " (SELECT message_id FROM settled ORDER BY at DESC LIMIT ?)",
            (self._max,),
        )
