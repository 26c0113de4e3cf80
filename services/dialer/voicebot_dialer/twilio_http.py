"""The dialer's HTTP client for Twilio REST: a bounded time per request, and Retry-After kept.

Every request ends (answer, or a requests exception) within `timeout_s` of connecting: the
reconciler relies on no `calls.create` being in flight once a job has been 'placing' for
DIALER_PLACING_TIMEOUT_S (the settings check the timeout is shorter). A 429 raises
`TwilioRateLimited`, which carries Twilio's Retry-After (the SDK's exception drops headers).

Pacing as Twilio sees it: a request made inside `before_write(check)` calls `check` once its
connection is up (TCP and TLS done) and just before its first byte is written, so a rate token that
`check` verifies (or replaces) is judged by when the request really leaves, handshake included;
`check`'s wait counts in the request's time budget. `warm_up` opens the connection beforehand.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioRestException
from twilio.http.response import Response
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import Timeout
from urllib3.util.wait import wait_for_read

from voicebot_core.twilio_rest import BaseUrlHttpClient

DEFAULT_RETRY_AFTER_S = 1.0  # a 429 without (a readable) Retry-After

log = logging.getLogger(__name__)
_before_write: ContextVar[Callable[[], None] | None] = ContextVar("before_write", default=None)


@contextmanager
def before_write(check: Callable[[], None]) -> Iterator[None]:
    """Requests made inside call `check` with their connection up, just before writing; whatever it
    raises ends the request unsent."""
    token = _before_write.set(check)
    try:
        yield
    finally:
        _before_write.reset(token)


class _CheckedWrite:
    def request(self, *args: Any, **kwargs: Any) -> None:
        check = _before_write.get()
        if check is not None:
            if self.is_closed:  # plain HTTP connects lazily, on the first write; HTTPS pools already did
                self.connect()
            check()
        super().request(*args, **kwargs)  # type: ignore[misc]


class _CheckedHTTPConnection(_CheckedWrite, HTTPConnection):
    pass


class _CheckedHTTPSConnection(_CheckedWrite, HTTPSConnection):
    @property
    def is_connected(self) -> bool:
        """urllib3 takes an idle connection with bytes to read as closed by the server; but a TLS 1.3
        connection never read from yet (a warmed one) holds the session tickets the server sent after
        the handshake. Let TLS consume those records before deciding."""
        if not isinstance(self.sock, ssl.SSLSocket) or not wait_for_read(self.sock, timeout=0.0):
            return super().is_connected
        timeout = self.sock.gettimeout()
        self.sock.settimeout(0.0)
        try:
            self.sock.recv(1)
        except ssl.SSLWantReadError:
            return True  # only TLS records were waiting
        except OSError:
            return False
        finally:
            self.sock.settimeout(timeout)
        return False  # end of stream, or bytes nobody asked for


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class _CheckedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _CheckedHTTPPool, "https": _CheckedHTTPSPool}


class TwilioRateLimited(TwilioRestException):
    """Twilio answered 429: it did not act on the request; ask again after `retry_after_s`."""

    def __init__(self, uri: str, method: str, msg: str, code: int | None, retry_after_s: float) -> None:
        super().__init__(429, uri, msg=msg, code=code, method=method)
        self.retry_after_s = retry_after_s


def retry_after_seconds(value: str | None, now: float | None = None) -> float:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date); a default when absent."""
    if not value:
        return DEFAULT_RETRY_AFTER_S
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - (time.time() if now is None else now))
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_S


class DialerHttpClient(BaseUrlHttpClient):
    def __init__(self, base_url: str, timeout_s: float) -> None:
        super().__init__(base_url)
        # total: connect and the wait for the answer share one budget (a float would allow each its own)
        self.timeout = Timeout(total=timeout_s)
        self.timeout_s = timeout_s
        adapter = _CheckedAdapter(pool_maxsize=min(32, (os.cpu_count() or 1) + 4))  # as the SDK's
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    def warm_up(self) -> None:
        """Leave an open connection to the API host in the pool (connecting now when none is idle),
        so the next request is written without a handshake first. Best effort: the request meets,
        and handles, whatever fails here."""
        url = f"{self._scheme}://{self._netloc}/"
        env = self.session.merge_environment_settings(url, self.proxy, None, None, None)
        adapter = self.session.get_adapter(url)
        try:
            pool = adapter.get_connection_with_tls_context(requests.Request("GET", url).prepare(), env["verify"],
                                                           env["proxies"], env["cert"])
            conn = pool._get_conn()  # the pool's own way: an idle connection the server dropped is closed
        except Exception as exc:  # best effort, see above
            log.debug("Twilio connection warm-up failed: %s", exc)
            return
        try:
            if conn.is_closed:
                conn.timeout = self.timeout_s
                conn.connect()
        except Exception as exc:  # best effort
            log.debug("Twilio connection warm-up failed: %s", exc)
            conn.close()
        finally:
            pool._put_conn(conn)

    def request(self, method, url, params=None, data=None, headers=None, auth=None, timeout=None,
                allow_redirects=False) -> Response:
        response = super().request(method, url, params=params, data=data, headers=headers, auth=auth,
                                   timeout=None, allow_redirects=allow_redirects)
        if response.status_code == 429:
            try:
                body = json.loads(response.text)
            except ValueError:
                body = {}
            body = body if isinstance(body, dict) else {}
            raise TwilioRateLimited(url, method, str(body.get("message") or "Too Many Requests"), body.get("code"),
                                    retry_after_seconds(response.headers.get("Retry-After")))
        return response
