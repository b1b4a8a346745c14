"""Entry point of an egress worker process: ``python -m pyegress.handler``.

Reads a :class:`~pyegress.contract.job.JobSpec` line from stdin, then
commands; writes events to stdout; logs to stderr. SIGTERM and SIGINT end the
recording cleanly (the file is finished), as a ``stop`` command would. Started
with ``--pool=<pid>`` it first waits, imported, until the service assigns it an
egress (:mod:`.pooled`).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import signal
import sys
import time

from ..media.passthrough import PassthroughPipeline
from ..media.pipeline import Pipeline
from ..media.recording import Recording
from ..contract.events import END_KILLED, HandlerEvent
from ..contract.job import Command, JobSpec
from .manifests import finish as finish_manifests
from .pooled import POOL_ARG, wait_for_job

log = logging.getLogger("pyegress.handler")


class EventLog:
    """Sends events to the service on stdout and keeps them, in case the service dies and the
    handler must report its egress's end itself (:func:`_report_orphaned`). A ``complete`` or ``failed``
    event is held back (:attr:`final`) until the manifests are written (:func:`.manifests.finish`)."""

    def __init__(self) -> None:
        self.events: list[HandlerEvent] = []
        self.service_gone = False
        self.final: HandlerEvent | None = None
        self.layout = ""  # the layout last switched to (UpdateLayout), which the manifests echo

    def __call__(self, event: HandlerEvent) -> None:
        if event.event in ("complete", "failed") and self.final is None:
            self.final = event
            return
        self.send(event)

    def send(self, event: HandlerEvent) -> None:
        self.events.append(event)
        if self.service_gone:
            return
        try:
            sys.stdout.write(event.model_dump_json(exclude_defaults=True) + "\n")
            sys.stdout.flush()
        except OSError:  # broken pipe: the service died; the recording goes on to a finished file
            self.service_gone = True


async def _read_commands(pipeline: Recording, events: EventLog) -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:  # the service went away: finish the file rather than lose it
            events.service_gone = True
            pipeline.stop(END_KILLED)
            return
        try:
            cmd = Command.model_validate_json(line)
        except ValueError:
            log.warning("ignoring malformed command %r", line[:200])
            continue
        if cmd.cmd == "stop":
            pipeline.stop()
        elif cmd.cmd in ("pause", "resume"):
            pipeline.pause() if cmd.cmd == "pause" else pipeline.resume()
            events(HandlerEvent(event="paused" if cmd.cmd == "pause" else "resumed"))
        elif cmd.cmd == "preview":
            pipeline.preview()
        elif cmd.cmd == "update_stream":
            pipeline.update_streams(cmd.add_urls, cmd.remove_urls)
        elif cmd.cmd == "layout":
            try:
                pipeline.set_layout(cmd.layout)
                events.layout = cmd.layout
            except ValueError as e:
                log.warning("layout: %s", e)


async def main() -> None:
    if sys.argv[1:] and sys.argv[1].startswith(POOL_ARG):  # pre-started by the service's pool: wait for an egress
        wait_for_job()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec = JobSpec.model_validate_json(sys.stdin.readline())
    events = EventLog()
    if spec.passthrough:
        pipeline: Recording = PassthroughPipeline(spec, events)
    else:
        pipeline = Pipeline(spec, events)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, pipeline.stop, END_KILLED)
    reader = asyncio.create_task(_read_commands(pipeline, events))
    try:
        await pipeline.run()
    finally:
        reader.cancel()
        if events.final is not None:
            try:
                await asyncio.to_thread(finish_manifests, spec, events.events, events.final,
                                        events.layout)
            except Exception:  # the end matters more than its manifest
                log.exception("writing the manifests failed")
            events.send(events.final)
    if events.service_gone and spec.io_report is not None:
        await _report_orphaned(spec, events.events)
    # Exit here: returning would make asyncio.run wait for its executor, whose stdin reader thread
    # stays blocked in readline() until the service closes the pipe. os._exit also skips the
    # livekit SDK's exit-time cleanup, which can abort on rooms just disconnected.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


async def _report_orphaned(spec: JobSpec, events: list[HandlerEvent]) -> None:
    """Tell livekit-server (IOInfo.UpdateEgress) how the egress ended when its service is gone:
    EGRESS_FAILED, since it was cut short, with the finished files in its results."""
    import redis
    from livekit.protocol import egress as eg

    from ..psrpc.rpc import PsrpcError, RedisBus, RpcClient
    from ..contract.egress_info import apply_worker_event, set_failed

    report = spec.io_report
    info = eg.EgressInfo.FromString(base64.b64decode(spec.info))
    for event in events:
        apply_worker_event(info, event, spec.legacy)
    set_failed(info, "the pyegress worker service stopped during the recording; its outputs were finished up to then")
    info.updated_at = time.time_ns()
    bus = RedisBus(report.redis)
    try:
        await bus.start()
        client = RpcClient(bus, "IOInfo")
        await client.start()
        await client.call("UpdateEgress", info, timeout_s=10)
        log.info("reported %s as failed to livekit-server", info.egress_id)
    except (PsrpcError, OSError, redis.RedisError) as e:
        log.error("could not report %s to livekit-server: %s", info.egress_id, e)
    finally:
        await bus.close()


if __name__ == "__main__":
    asyncio.run(main())
