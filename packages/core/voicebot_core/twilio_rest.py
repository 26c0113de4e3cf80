"""The real twilio SDK client, optionally pointed at another base URL (the emulator).

twilio-python builds absolute URLs on https://api.twilio.com; a custom HttpClient rewrites the
scheme and host, so every request still goes through the SDK's own encoding and auth.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

TWILIO_API_HOST = "api.twilio.com"
# Twilio answers these when a call is no longer in progress: treat as already ended.
CALL_GONE_CODES = frozenset({20404, 21220})


class BaseUrlHttpClient(TwilioHttpClient):
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        super().__init__(timeout=timeout)
        parts = urlsplit(base_url)
        self._scheme, self._netloc = parts.scheme, parts.netloc

    def request(self, method, url, params=None, data=None, headers=None, auth=None, timeout=None,
                allow_redirects=False):
        parts = urlsplit(url)
        if parts.netloc == TWILIO_API_HOST:
            url = urlunsplit((self._scheme, self._netloc, parts.path, parts.query, parts.fragment))
        return super().request(method, url, params=params, data=data, headers=headers, auth=auth,
                               timeout=timeout, allow_redirects=allow_redirects)


def make_client(account_sid: str, auth_token: str, base_url: str = "https://api.twilio.com") -> Client:
    if urlsplit(base_url).netloc in ("", TWILIO_API_HOST):
        return Client(account_sid, auth_token)
    return Client(account_sid, auth_token, http_client=BaseUrlHttpClient(base_url))


def call_is_gone(exc: TwilioRestException) -> bool:
    return exc.code in CALL_GONE_CODES or exc.status == 404
