"""Log output: plain text or one JSON object per line; records made during a request carry its id."""

from __future__ import annotations

import json
import logging
import logging.config
import time
from datetime import UTC, datetime
from typing import Any

from dockyard.observability.requests import current_request_id

LOG_FORMATS = ("text", "json")
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RequestIdFilter(logging.Filter):
    """Puts the current request's id (or None) on each record as `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id.get()
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message`, with ` [request ID]` on records made while serving a request."""

    def __init__(self) -> None:
        super().__init__(_TEXT)
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # The same text as logging's default, formatted once per second instead of once per record.
        second = int(record.created)
        if second != self._second:
            self._stamp = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = second
        return f"{self._stamp},{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id and not hasattr(record, "access"):
            text += f" [request {request_id}]"
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (RFC 3339, UTC), level, logger, message, request_id, and for
    access log records the request's fields (method, path, route, status, bytes, duration, user)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            entry.update(access)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def logging_config(level: str, log_format: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for Dockyard and Granian alike, written to standard error."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "dockyard",
        "filters": ["request_id"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"dockyard": {"()": formatter}},
        "handlers": {"console": handler},
        "root": {"handlers": ["console"], "level": level.upper()},
        # Granian's own loggers: the same output; its access log stays off (ours has the request id).
        "loggers": {
            "_granian": {"handlers": ["console"], "level": level.upper(), "propagate": False},
            "granian.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }


def configure_logging(level: str, log_format: str) -> None:
    """Apply `logging_config` to this process."""
    logging.config.dictConfig(logging_config(level, log_format))
    skip_unused_record_fields()


def skip_unused_record_fields() -> None:
    """Stop filling in thread and process names on every record: no Dockyard format shows them, and
    looking them up was a good part of the cost of an access log line."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
