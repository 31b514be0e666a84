"""Logging for every process: text (the default) or one JSON object a line
(``TELEMETRA_LOG_FORMAT=json``, python-json-logger), each record with the request id of the
request it was logged in (``telemetra.kit.middleware``), credentials redacted
(``telemetra.kit.redact``) from text and JSON alike.

``configure`` is for the command line's own process; ``uvicorn_config`` is the dictConfig
uvicorn applies in every worker process, where ``configure`` never ran.
"""

import copy
import logging

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from telemetra.kit.middleware import current_request_id
from telemetra.kit.redact import RedactCredentials, redact

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s"
_JSON_RENAMED = {"asctime": "time", "levelname": "level", "name": "logger"}
_FILTERS = {"redact_credentials": {"()": "telemetra.kit.logging.RedactCredentials"},
            "request_id": {"()": "telemetra.kit.logging.RequestIdFilter"}}


class RequestIdFilter(logging.Filter):
    """Puts the current request's id (None outside a request) on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object a line: time, level, logger, message, request_id, and a record's
    extra fields; uvicorn's access lines also as fields (client, method, path, status)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("rename_fields", _JSON_RENAMED)
        super().__init__(_JSON_FIELDS, **kwargs)

    def add_fields(self, log_data: dict, record: logging.LogRecord, message_dict: dict) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data.pop("color_message", None)  # uvicorn's copy of the message, for terminals
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) \
                and len(record.args) == 5:
            client, method, path, _version, status = record.args
            log_data.update(client=client, method=method, path=path, status=status)

    def format(self, record: logging.LogRecord) -> str:
        # The filter redacted message and arguments; this catches fields a record carries
        # besides them (extra=..., uvicorn's), after they are turned into text.
        return redact(super().format(record))


def _formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def _alembic_level(level: str) -> str:
    """Alembic's own lines (plugins set up, each step run) only when debugging: Telemetra
    logs one line of its own when a migration changes the schema (telemetra.db.migrate)."""
    return "DEBUG" if level.upper() == "DEBUG" else "WARNING"


def configure(level: str, log_format: str = "text") -> None:
    """Log to stderr, credentials redacted, in ``log_format`` (``text`` or ``json``)."""
    logging.basicConfig(level=level.upper(), format=TEXT_FORMAT)
    logging.getLogger("alembic").setLevel(_alembic_level(level))
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactCredentials) for f in handler.filters):
            handler.addFilter(RedactCredentials())
            handler.addFilter(RequestIdFilter())
        handler.setFormatter(_formatter(log_format))


def uvicorn_config(level: str, log_format: str = "text") -> dict:
    """uvicorn's own logging, with the filters on its access and error handlers and on the
    root logger's (Telemetra's) handler, in ``log_format``."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = copy.deepcopy(_FILTERS)
    config["formatters"]["telemetra"] = {"format": TEXT_FORMAT}
    if log_format == "json":
        for name in config["formatters"]:
            config["formatters"][name] = {"()": "telemetra.kit.logging.JsonFormatter"}
    config["handlers"]["telemetra"] = {"class": "logging.StreamHandler",
                                       "stream": "ext://sys.stderr", "formatter": "telemetra"}
    for handler in config["handlers"].values():
        handler["filters"] = list(_FILTERS)
    config["root"] = {"handlers": ["telemetra"], "level": level.upper()}
    config["loggers"]["alembic"] = {"level": _alembic_level(level)}
    return config
