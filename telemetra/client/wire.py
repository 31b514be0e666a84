"""HTTP plumbing shared by the clients: the API base URL, and an answer turned into a value
or an ``ApiError``."""

import email.utils
import time

import httpx

from telemetra.client.errors import ApiError, Unreachable

API_PREFIX = "/api/v1"


def api_base(url: str) -> str:
    """``http://host:8000`` or ``http://host:8000/api/v1`` -> the latter."""
    url = url.rstrip("/")
    return url if url.endswith(API_PREFIX) else url + API_PREFIX


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time()) if when else None


def error(response: httpx.Response) -> ApiError:
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    detail = problem.get("detail") or problem.get("title") or response.reason_phrase
    return ApiError(response.status_code, problem.get("code"), str(detail), problem,
                    retry_after(response))


def request(http: httpx.Client, method: str, url: str, **kwargs) -> httpx.Response:
    """One request; a transport failure is ``Unreachable``, an error answer ``ApiError``."""
    try:
        response = http.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        raise Unreachable(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
    if response.status_code >= 400:
        raise error(response)
    return response
