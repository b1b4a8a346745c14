"""A worker process waiting in the service's pool (:mod:`pyegress.service.worker_pool`).

A pooled process is started as ``python -m pyegress.handler --pool=<service pid> <IDLE_LABEL>``: it
imports the whole stack, writes ``ready`` on stdout and waits. The service hands it an egress with one
:class:`Assignment` line; from then on it is an ordinary worker (JobSpec line, commands, events), logging
to that egress's log file. Until then it dies with the service: SIGKILL on the parent's death
(``PR_SET_PDEATHSIG``, from its start where the pool runs it under ``setpriv``), and an exit when stdin closes.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

from pydantic import BaseModel

POOL_ARG = "--pool="
#: The idle process's last argument, overwritten with its egress ID once it has one (``ps``, tests and
#: benchmarks find a worker by the egress ID on its command line). LiveKit's IDs are ``EG_`` + 12 characters.
IDLE_LABEL = "pooled-idle...."
READY = b"ready\n"
_PR_SET_PDEATHSIG = 1


class Assignment(BaseModel):
    """The line that turns a pooled process into the worker of ``egress_id``: its stderr goes to
    ``log_path`` (appended), as a worker started for that egress would log."""

    egress_id: str
    log_path: str


def _set_pdeathsig(sig: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)


def _relabel(old: str, new: str) -> None:
    """Overwrite argument ``old`` of this process's command line (``/proc/<pid>/cmdline``) with ``new``,
    padded with NULs; a ``new`` longer than ``old`` is left out."""
    if len(new) > len(old):
        return
    fields = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
    start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (proc(5))
    with open("/proc/self/mem", "r+b", buffering=0) as mem:
        mem.seek(start)
        at = mem.read(end - start).rfind(b"\0" + old.encode() + b"\0")
        if at >= 0:
            mem.seek(start + at + 1)
            mem.write(new.encode().ljust(len(old), b"\0"))


def wait_for_job() -> None:
    """Idle until the service hands this process an egress, then log to that egress's file.

    Exits (status 0) if the service is gone or closes the pool first. After the assignment the process
    no longer dies with the service: like any worker it finishes its files when the service goes away.
    """
    parent = int(sys.argv[1].removeprefix(POOL_ARG))
    _set_pdeathsig(signal.SIGKILL)
    if os.getppid() != parent:  # the service died before the line above
        os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C of the service's terminal is the service's
    sys.stdout.buffer.write(READY)
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        os._exit(0)
    _set_pdeathsig(0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    job = Assignment.model_validate_json(line)
    try:
        _relabel(IDLE_LABEL, job.egress_id)
    except OSError:  # only a label: the egress records without it
        pass
    fd = os.open(job.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sys.stderr.flush()
    os.dup2(fd, 2)
    os.close(fd)
