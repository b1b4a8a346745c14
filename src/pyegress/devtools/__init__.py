"""What ``pyegress demo`` and ``pyegress livekit-server`` run, also used by the tests and benchmarks: a dev-mode
livekit-server, ``pyegress serve``/``worker`` as child processes, generated publishers, ffprobe. The servers only
tests use (S3, GCS, Azure, SFTP, PostgreSQL, Redis, RTMP, SRT, a proxy) are in ``tests/support/``."""
