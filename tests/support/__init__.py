"""Servers and media the tests and benchmarks run against (S3, GCS, Azure, SFTP, PostgreSQL, Redis, RTMP, SRT,
an HTTP proxy, a WebM of the generated publisher). Not installed with pyegress: tests import it as ``support``
(``tests/`` is on ``sys.path`` through its conftest), benchmarks through ``bench/harness.py``."""
