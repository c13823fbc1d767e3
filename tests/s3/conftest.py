"""A real S3 API for the object-storage tests: moto's server on loopback, behind a gate that can hold
or refuse one upload request, so a test can stop a task while its upload is under way.

moto dates every multipart upload 2010-11-10 in its listing; the gate puts the time each was begun,
as S3 does, so the stale-upload sweep can tell a killed run's upload from a live one's.

The AWS connection ``aws_default`` points at it (``endpoint_url`` in its extras); a destination names
it in the URL, ``s3://aws_default@<bucket>/<key>``. Each test gets a bucket of its own.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from typing import Any
from urllib.parse import parse_qs, unquote

import pytest

PART = 5 * 2**20
REFUSED = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
    b"<Message>refused by the test's gate</Message></Error>"
)


class UploadGate:
    """WSGI middleware in front of moto. Armed, it acts on the first request that uploads data of a
    temporary (``.tmp-`` in the key) beyond a multipart upload's first part: the second part, or the
    one-shot PUT of an object too small for parts (the write probe's empty PUT is let through).
    ``hold``: keep that request until ``release()``, then answer it with an error without passing it
    on (its client is gone: the server never stores it). ``refuse``: answer it 403 at once."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._condition = threading.Condition()
        self._mode: str | None = None
        self._held = self._released = False
        self._initiated: dict[str, float] = {}  # key -> when its multipart upload was begun

    def _dated(self, listing: bytes) -> bytes:
        """moto answers every upload's Initiated with one date of 2010: put the time it was begun."""

        def date(upload: re.Match[bytes]) -> bytes:
            key = re.search(rb"<Key>(.*?)</Key>", upload[0])
            begun = self._initiated.get(unquote(key[1].decode())) if key else None
            if begun is None:
                return upload[0]
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(begun)).encode()
            return re.sub(rb"<Initiated>[^<]*<", b"<Initiated>" + stamp + b"<", upload[0])

        return re.sub(rb"<Upload>.*?</Upload>", date, listing, flags=re.DOTALL)  # same length

    def arm(self, mode: str) -> None:
        assert mode in ("hold", "refuse")
        with self._condition:
            self._mode, self._held, self._released = mode, False, False

    def wait_held(self, timeout: float = 120) -> None:
        """Return once the armed request has arrived and is being held."""
        with self._condition:
            assert self._condition.wait_for(lambda: self._held, timeout), "no upload reached the gate"

    def release(self) -> None:
        with self._condition:
            self._mode, self._released = None, True
            self._condition.notify_all()

    def _acts_on(self, environ: dict[str, Any]) -> str | None:
        if self._mode is None or environ["REQUEST_METHOD"] != "PUT" or ".tmp-" not in environ["PATH_INFO"]:
            return None
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if query.get("partNumber") == ["1"] or int(environ.get("CONTENT_LENGTH") or 0) == 0:
            return None
        mode, self._mode = self._mode, None  # once
        return mode

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self._condition:
            mode = self._acts_on(environ)
        query = environ.get("QUERY_STRING", "")
        if mode is None and environ["REQUEST_METHOD"] == "POST" and query == "uploads":
            bucket_key = environ["PATH_INFO"].lstrip("/")
            self._initiated[bucket_key.split("/", 1)[1]] = time.time()
        if mode is None and environ["REQUEST_METHOD"] == "GET" and "uploads" in parse_qs(query, True):
            return [self._dated(b"".join(self.app(environ, start_response)))]
        if mode is None:
            return self.app(environ, start_response)
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if mode == "hold":
            with self._condition:
                self._held = True
                self._condition.notify_all()
                self._condition.wait_for(lambda: self._released, timeout=300)
            start_response("500 Internal Server Error", [("Content-Type", "application/xml")])
            return [b"<Error><Code>InternalError</Code><Message>connection lost</Message></Error>"]
        start_response("403 Forbidden", [("Content-Type", "application/xml")])
        return [REFUSED]


@dataclass
class S3:
    """The moto server: its endpoint, a boto3 client on it, and its gate."""

    endpoint: str
    client: Any
    gate: UploadGate

    def objects(self, bucket: str) -> dict[str, bytes]:
        """Every object of ``bucket`` (hidden ones too) with its content."""
        listed = self.client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {o["Key"]: self.client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}

    def uploads(self, bucket: str) -> list[str]:
        """Keys of the bucket's incomplete multipart uploads: invisible to a listing, billed until aborted."""
        return [u["Key"] for u in self.client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3]:
    import boto3
    import s3fs
    from moto.moto_server.threaded_moto_server import MotoRequestHandler
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    # Parts of S3's smallest size (5 MiB, not s3fs's 50 MiB), so a few MB of rows take two parts.
    part_size, s3fs.S3FileSystem.default_block_size = s3fs.S3FileSystem.default_block_size, PART
    gate = UploadGate(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, gate, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    try:
        yield S3(endpoint=endpoint, client=client, gate=gate)
    finally:
        gate.release()
        server.shutdown()
        thread.join(timeout=10)
        s3fs.S3FileSystem.default_block_size = part_size


@pytest.fixture
def s3(s3_server: S3, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    """The S3 server with ``aws_default`` pointing at it; no other AWS credentials anywhere."""
    import os

    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookups off loopback
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    connection = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": s3_server.endpoint, "region_name": "us-east-1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
    yield s3_server
    s3_server.gate.release()


@pytest.fixture
def bucket(s3: S3) -> str:
    name = f"lake-{uuid.uuid4().hex[:12]}"
    s3.client.create_bucket(Bucket=name)
    return name


def read_rows(data: bytes, fmt: str) -> list[dict[str, Any]]:
    """The rows of an output file: JSON Lines (gzip by magic number) or Parquet."""
    import gzip

    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(BytesIO(data)).to_pylist()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return [json.loads(line) for line in data.splitlines()]
