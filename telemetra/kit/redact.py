"""Credentials never reach a log: a logging filter that redacts them from every record.

A careless client puts its device key in the URL (``?api_key=tdk_...``): the request is
refused, but uvicorn's access log would record the full key. The filter is installed on every
handler (telemetra.cli), uvicorn's access and error handlers included, and rewrites the
record's message, arguments and traceback text before any formatter sees them.
"""

import logging
import re
from urllib.parse import unquote_plus

REDACTED = "[REDACTED]"
# Query parameters whose value is a credential whatever it looks like.
SECRET_PARAMETERS = frozenset({"api_key", "apikey", "key", "token", "access_token",
                               "refresh_token", "password", "secret", "client_secret"})
_PARAMETER = re.compile(r"([?&;])([^=&;\s#\"']+)=([^&;\s#\"']*)")
# Telemetra's own secrets, anywhere in a text: device keys, refresh tokens ("_" may come
# percent-encoded), and JWTs.
_TOKENS = re.compile(r"\b(tdk|trt)(?:_|%5[fF])[A-Za-z0-9_\-%]*"
                     r"|\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")


def _parameter(match: re.Match) -> str:
    name = unquote_plus(match.group(2)).strip().lower()
    if name in SECRET_PARAMETERS:
        return f"{match.group(1)}{match.group(2)}={REDACTED}"
    return match.group(0)


def redact(text: str) -> str:
    text = _PARAMETER.sub(_parameter, text)
    return _TOKENS.sub(lambda m: f"{m.group(1)}_{REDACTED}" if m.group(1) else REDACTED, text)


def _redact_value(value):
    return redact(value) if isinstance(value, str) else value


class RedactCredentials(logging.Filter):
    """Redacts credentials in place and lets every record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, dict):
            record.args = {k: _redact_value(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            # uvicorn's access formatter unpacks these (client, method, path, version,
            # status): they stay a tuple of the same length.
            record.args = tuple(_redact_value(v) for v in record.args)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
