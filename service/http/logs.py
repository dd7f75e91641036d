"""Logging of the API process: one JSON object per line (python-json-logger), access log included.

`app_from_env` applies it after uvicorn configured its own loggers, so every way of starting the API
(`neuronlens up`, `uvicorn --factory`, the container) logs the same way. Every record carries the
request id of the request it belongs to (service/http/request_id.py).
"""

from __future__ import annotations

import logging.config
from typing import Any, Literal

JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
"""Fields of every JSON line (plus `request_id`, and the access log's client, method, path, status)."""
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def logging_config(log_format: Literal["json", "text"], access_log: bool = True) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the API's loggers (neuronlens.*, uvicorn, uvicorn.access).
    Levels of the uvicorn loggers are left as uvicorn's `--log-level` set them; ``access_log`` False
    keeps the access log off (uvicorn's `--no-access-log`)."""
    formatter: dict[str, Any] = (
        {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": JSON_FIELDS,
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "timestamp": False,
        }
        if log_format == "json"
        else {"format": TEXT_FORMAT}
    )
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "default",
        "filters": ["request_id"],
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "service.http.request_id.RequestIdLogFilter"}},
        "formatters": {"default": formatter},
        "handlers": {"default": handler, "access": {**handler, "formatter": "default"}},
        "loggers": {
            "neuronlens": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn": {"handlers": ["default"], "propagate": False},
            "uvicorn.access": {"handlers": ["access"] if access_log else [], "propagate": False},
        },
    }


def configure_logging(log_format: Literal["json", "text"]) -> None:
    """Re-format the API's logs; uvicorn configured its loggers first (`--no-access-log` leaves the access
    logger without handlers, and it stays so)."""
    access_log = bool(logging.getLogger("uvicorn.access").handlers)
    logging.config.dictConfig(logging_config(log_format, access_log))
