"""The HTTP client for the requests Telemetra makes itself: webhooks and connector pulls."""

import functools
import ssl

import httpx

from telemetra import __version__


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx's own verification (certifi's CAs; SSL_CERT_FILE and SSL_CERT_DIR honoured),
    built once per process: reading the CA bundle takes about 30 ms, which every start of
    the app paid twice (measured), the suite's thousands of app starts with it."""
    return httpx.create_ssl_context()


def outbound_client(**options) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that follows no redirects and says it is Telemetra."""
    return httpx.AsyncClient(verify=_tls(), follow_redirects=False,
                             headers={"User-Agent": f"Telemetra/{__version__}"}, **options)
