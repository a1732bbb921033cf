"""A local S3 server for the object-storage tests (tests/s3/server.py: moto's S3).

The server starts once for the tests of this directory, on 127.0.0.1, in a process
group of its own, and is stopped by that group's id when they are done (the rest of a
``pytest`` run sees neither it nor its ``AWS_*`` settings). Each test gets a store URI of its own
(a fresh prefix in one bucket), with test credentials in ``AWS_*``, which spawned
children inherit. The tests skip only where moto is not installed (it is a dev
dependency: in CI they run).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "server.py")
BUCKET = "mlops-test"
#: What the tests' processes see: test credentials, and no AWS configuration of the
#: machine's user (profiles, instance metadata) to slow down or redirect a request.
TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
#: ... and none of these, which would redirect or re-sign the requests.
TEST_UNSET = ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


class S3Server:
    """A running tests/s3/server.py: its port, and a boto3 client to set up and inspect."""

    def __init__(self, proc: subprocess.Popen, port: int):
        import boto3

        self.proc, self.port = proc, port
        self.endpoint = f"127.0.0.1:{port}"
        self.client = boto3.client("s3", endpoint_url=f"http://{self.endpoint}",
                                   region_name="us-east-1")

    def uri(self, bucket: str, prefix: str) -> str:
        """A store URI for ``bucket/prefix`` on this server."""
        return (f"s3://{bucket}/{prefix}?endpoint_override={self.endpoint}"
                "&scheme=http&region=us-east-1")

    def bucket(self, name: str) -> str:
        try:
            self.client.create_bucket(Bucket=name)
        except self.client.exceptions.BucketAlreadyOwnedByYou:
            pass
        return name

    def keys(self, bucket: str, prefix: str) -> list[str]:
        """Every object key under ``prefix/`` (relative to it), sorted."""
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix.rstrip("/") + "/"):
            out += [o["Key"][len(prefix.rstrip("/")) + 1:] for o in page.get("Contents", [])]
        return sorted(out)


def _start() -> S3Server:
    proc = subprocess.Popen([sys.executable, SERVER], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True,
                            env=os.environ.copy())  # TEST_ENV is set by then
    try:
        line = proc.stdout.readline()  # "PORT n" once it listens (EOF if it died)
        if not line.startswith("PORT "):
            raise RuntimeError(f"the local S3 server did not start (exit code {proc.poll()})")
        server = S3Server(proc, int(line.split()[1]))
        deadline = time.monotonic() + 30
        while True:  # it answers S3 requests, not only TCP
            try:
                server.client.list_buckets()
                return server
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
    except BaseException:
        _stop(proc)
        raise


def _stop(proc: subprocess.Popen) -> None:
    """End the server's process group (the group this fixture started, by its id)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture(scope="package")  # stopped when the tests of tests/s3 are done
def s3_server():
    pytest.importorskip("moto", reason="moto (a dev dependency) runs the local S3 server")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in TEST_ENV.items():
            mp.setenv(k, v)
        for k in TEST_UNSET:
            mp.delenv(k, raising=False)
        server = _start()
        try:
            server.bucket(BUCKET)
            yield server
        finally:
            _stop(server.proc)


@pytest.fixture
def s3_store(s3_server):
    """A store URI of this test's own (``s3://mlops-test/<fresh prefix>?...``)."""
    return s3_server.uri(BUCKET, f"t-{uuid.uuid4().hex[:12]}")
