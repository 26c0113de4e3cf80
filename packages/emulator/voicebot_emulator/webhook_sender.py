"""The emulator's HTTP client that sends Twilio's webhooks to the app (TwiML fetches, callbacks), signed."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

import httpx

from voicebot_core.signatures import SIGNATURE_HEADER, SignatureChecker


class WebhookSender:
    def __init__(self, auth_token: str, timeout_s: float = 15.0) -> None:
        self._signer = SignatureChecker(auth_token)
        self._client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)

    def sign(self, url: str, params: dict[str, str]) -> str:
        return self._signer.sign(url, params)

    async def request(self, url: str, params: dict[str, str], method: str = "POST") -> httpx.Response:
        """Signed exactly as Twilio does: POST signs url + sorted params, GET signs the full URL."""
        headers = {"User-Agent": "TwilioProxy/1.1", "Accept": "*/*"}
        if method.upper() == "GET":
            joiner = "&" if urlsplit(url).query else "?"
            full_url = f"{url}{joiner}{urlencode(params)}"
            headers[SIGNATURE_HEADER] = self.sign(full_url, {})
            return await self._client.get(full_url, headers=headers)
        headers[SIGNATURE_HEADER] = self.sign(url, params)
        return await self._client.post(url, data=params, headers=headers)

    async def aclose(self) -> None:
        await self._client.aclose()
