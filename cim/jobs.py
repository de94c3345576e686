"""Jobs of the processing service, kept in the scene store so that they survive a restart.

A job is accepted, then running (with a progress of 0..100), then successful, failed or dismissed. Its inputs are
kept as JSON, its results as a folder relative to the store's files root. A job found ``running`` or ``accepted``
when a server starts was cut off by the server's end: `fail_interrupted` marks it failed with the reason. Several
server processes may share a store (``cim serve --workers``): while a job waits or runs, its message names the
process that holds it (`holder`), and a starting process leaves alone the jobs of other live processes.

Tables are SQLAlchemy Core on `cim.schema.metadata`; functions take a Connection (the caller owns the transaction).

>>> STATUSES
('accepted', 'running', 'successful', 'failed', 'dismissed')
"""

from __future__ import annotations

import json
import os
import re
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from cim.schema import metadata
from cim.security import record

__all__ = ["INTERRUPTED", "STATUSES", "Job", "create_job", "fail_interrupted", "get_job", "held_by", "holder",
           "jobs", "latest_job", "list_jobs", "record_end", "update_job"]

STATUSES: tuple[str, ...] = ("accepted", "running", "successful", "failed", "dismissed")
FINISHED = frozenset({"successful", "failed", "dismissed"})
INTERRUPTED = "server stopped while the job was running"

jobs = sa.Table(
    "cim_jobs", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("process", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("progress", sa.Integer, nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),             # JSON
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("who", sa.String(64), nullable=True),
    sa.Column("created", sa.String(40), nullable=False),      # ISO 8601 UTC
    sa.Column("started", sa.String(40), nullable=True),
    sa.Column("finished", sa.String(40), nullable=True),
    sa.Column("results", sa.Text, nullable=True),             # folder relative to the store's files root
)


@dataclass(frozen=True)
class Job:
    id: str
    process: str
    status: str
    progress: int
    inputs: dict[str, Any]
    message: str | None
    who: str | None
    created: str
    started: str | None
    finished: str | None
    results: str | None

    @property
    def finished_(self) -> bool:
        return self.status in FINISHED


_HOLDER = re.compile(r"^(?:queued by|running in) process (\d+) on (\S+)$")


def holder(state: str = "running in") -> str:
    """The message of a job this process holds: ``"queued by process PID on HOST"`` or ``"running in ..."``."""
    return f"{state} process {os.getpid()} on {socket.gethostname()}"


def held_by(message: str | None) -> tuple[int, str] | None:
    """(pid, host) of the process a `holder` message names, else None."""
    m = _HOLDER.match(message or "")
    return (int(m.group(1)), m.group(2)) if m else None


def _held_by_another_live_process(message: str | None) -> bool:
    held = held_by(message)
    if held is None:
        return False
    pid, host = held
    if host != socket.gethostname():
        return True                       # another machine's server: its own restart settles its jobs
    if pid == os.getpid():
        return False                      # this process is starting: nothing of its own runs yet
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _from_row(r) -> Job:
    return Job(r.id, r.process, r.status, int(r.progress), json.loads(r.inputs), r.message, r.who, r.created,
               r.started, r.finished, r.results)


def create_job(conn: sa.Connection, process: str, inputs: dict[str, Any], *, who: str | None = None,
               message: str | None = None) -> Job:
    """A new ``accepted`` job."""
    job_id = uuid.uuid4().hex
    conn.execute(jobs.insert().values(id=job_id, process=process, status="accepted", progress=0,
                                      inputs=json.dumps(inputs), message=message, who=who, created=_now()))
    return get_job(conn, job_id)


def get_job(conn: sa.Connection, job_id: str) -> Job | None:
    row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
    return None if row is None else _from_row(row)


def list_jobs(conn: sa.Connection, *, limit: int = 1000, statuses: tuple[str, ...] | None = None,
              processes: tuple[str, ...] | None = None) -> list[Job]:
    """The most recent jobs first; with ``statuses`` or ``processes``, only jobs in one of those."""
    q = sa.select(jobs)
    if statuses is not None:
        q = q.where(jobs.c.status.in_(statuses))
    if processes is not None:
        q = q.where(jobs.c.process.in_(processes))
    rows = conn.execute(q.order_by(jobs.c.created.desc(), jobs.c.id).limit(int(limit)))
    return [_from_row(r) for r in rows]


def latest_job(conn: sa.Connection, process: str, *, status: str = "successful") -> Job | None:
    """The job of ``process`` in ``status`` that finished last (None when there is none)."""
    row = conn.execute(sa.select(jobs).where(jobs.c.process == process, jobs.c.status == status)
                       .order_by(jobs.c.finished.desc(), jobs.c.id).limit(1)).first()
    return None if row is None else _from_row(row)


def update_job(conn: sa.Connection, job_id: str, *, only_if: tuple[str, ...] | None = None, **values: Any) -> bool:
    """Set columns of a job (``status="running"`` also sets ``started``, a finished status ``finished``);
    with ``only_if``, only while the job's status is one of those. True when the job was changed."""
    status = values.get("status")
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown job status {status!r}")
    if status == "running":
        values.setdefault("started", _now())
    if status in FINISHED:
        values.setdefault("finished", _now())
    q = jobs.update().where(jobs.c.id == job_id)
    if only_if is not None:
        q = q.where(jobs.c.status.in_(only_if))
    return conn.execute(q.values(**values)).rowcount > 0


def fail_interrupted(conn: sa.Connection) -> int:
    """Mark jobs left ``running`` or ``accepted`` by a server process that stopped failed with the reason (not
    those a live process on this host, or a process on another host, holds); how many."""
    rows = conn.execute(sa.select(jobs.c.id, jobs.c.message).where(jobs.c.status.in_(("running", "accepted"))))
    cut = [r.id for r in rows if not _held_by_another_live_process(r.message)]
    if not cut:
        return 0
    n = 0
    for job_id in cut:      # one by one, each with its audit entry (the table is small: jobs of one server)
        if conn.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.status.in_(("running", "accepted")))
                        .values(status="failed", message=INTERRUPTED, finished=_now())).rowcount:
            record_end(conn, job_id, "failed", INTERRUPTED)
            n += 1
    return n


def record_end(conn: sa.Connection, job_id: str, outcome: str, detail: str | None = None) -> None:
    """Put a job's end in the audit table: who started it, the process, the outcome and (for a failure) why."""
    job = get_job(conn, job_id)
    if job is not None:
        record(conn, who=job.who or "anonymous", action=f"job {job.process}", target=job_id, outcome=outcome,
               detail=detail)
