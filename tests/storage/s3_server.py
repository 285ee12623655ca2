"""moto's S3 server mode on 127.0.0.1, for the S3 driver's tests: a real HTTP S3 endpoint, no AWS."""

from __future__ import annotations

import functools
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3

from support.processes import Service, free_port, http_status

# moto accepts any credentials; these only have to be the same on both sides.
ACCESS_KEY = "dockyard-test-access"
SECRET_KEY = "dockyard-test-secret-key"
REGION = "us-east-1"


class MotoServer:
    """`moto_server` on a free port; `new_bucket()` makes an empty bucket per test."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        executable = Path(sys.executable).with_name("moto_server")
        self.service = Service("moto_server", [executable, "-H", "127.0.0.1", "-p", str(self.port)], log_path)

    def start(self) -> None:
        """Start and wait until it answers."""
        self.service.start(lambda: http_status(f"{self.url}/moto-api/") == 200, 60)

    def stop(self) -> None:
        """Stop it and everything it started."""
        self.service.stop()

    @functools.cached_property
    def client(self) -> Any:
        """A boto3 S3 client on the server (made once: that takes a while)."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def new_bucket(self) -> str:
        """The name of a new, empty bucket."""
        name = f"dockyard-{uuid.uuid4().hex[:20]}"
        self.client.create_bucket(Bucket=name)
        return name
