"""Entry point of an egress worker process: ``python -m pyegress.worker``.

Reads a :class:`~pyegress.worker.protocol.JobSpec` line from stdin, then
commands; writes events to stdout; logs to stderr. SIGTERM and SIGINT end the
recording cleanly (the file is finished), as a ``stop`` command would.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from ..media.pipeline import CompositePipeline
from .protocol import Command, JobSpec, WorkerEvent

log = logging.getLogger("pyegress.worker")


def _emit(event: WorkerEvent) -> None:
    sys.stdout.write(event.model_dump_json(exclude_defaults=True) + "\n")
    sys.stdout.flush()


async def _read_commands(pipeline: CompositePipeline) -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:  # the service went away: finish the file rather than lose it
            pipeline.stop("service disconnected")
            return
        try:
            cmd = Command.model_validate_json(line)
        except ValueError:
            log.warning("ignoring malformed command %r", line[:200])
            continue
        if cmd.cmd == "stop":
            pipeline.stop()
        elif cmd.cmd == "update_stream":
            pipeline.update_streams(cmd.add_urls, cmd.remove_urls)
        elif cmd.cmd == "layout":
            try:
                pipeline.set_layout(cmd.layout)
            except ValueError as e:
                log.warning("layout: %s", e)


async def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec = JobSpec.model_validate_json(sys.stdin.readline())
    pipeline = CompositePipeline(spec, _emit)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, pipeline.stop, "signal")
    reader = asyncio.create_task(_read_commands(pipeline))
    await pipeline.run()
    reader.cancel()
    # Exit here: returning would make asyncio.run wait for its executor, whose stdin reader thread
    # stays blocked in readline() until the service closes the pipe. os._exit also skips the
    # livekit SDK's exit-time cleanup, which can abort on rooms just disconnected.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
