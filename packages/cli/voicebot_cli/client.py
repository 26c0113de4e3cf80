"""A small client for the dialer REST API (Bearer key, JSON errors turned into messages)."""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status

    @property
    def transient(self) -> bool:
        """Worth retrying: the API unreachable (0), overloaded (429) or failing (5xx, 503: Redis away)."""
        return self.status == 0 or self.status == 429 or self.status >= 500


def _message(response: httpx.Response) -> str:
    """The API's `Error` body ({"error", "detail": [{"field", "message"}]}) as one line."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if not isinstance(body, dict):
        return str(body)[:500]
    fields = [f"{d.get('field', '')}: {d.get('message', '')}" for d in body.get("detail") or []
              if isinstance(d, dict)]
    return "; ".join(fields) or str(body.get("error") or body)


class DialerClient:
    def __init__(self, base_url: str, api_key: str, timeout_s: float = 40.0) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s,
                                  headers={"Authorization": f"Bearer {api_key}"})

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """JSON of a 2xx answer; ApiError otherwise (status 0: the API could not be reached)."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, f"cannot reach the dialer API: {exc}") from None
        if response.status_code >= 400:
            raise ApiError(response.status_code, _message(response))
        return response.json()

    # calls
    def dial(self, body: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.request("POST", "/v1/calls", json=body, headers=headers)

    def get_call(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/calls/{job_id}")

    def list_calls(self, **params: Any) -> dict[str, Any]:
        return self.request("GET", "/v1/calls", params={k: v for k, v in params.items() if v is not None})

    def cancel_call(self, job_id: str) -> dict[str, Any]:
        return self.request("POST", f"/v1/calls/{job_id}/cancel")

    def events(self, after: str, wait_s: float, **filters: str) -> dict[str, Any]:
        """One long poll: the server answers within `wait_s` (an empty page when nothing happened)."""
        params = {"after": after, "wait_s": wait_s, **{k: v for k, v in filters.items() if v}}
        return self.request("GET", "/v1/events", params=params, timeout=wait_s + 15)

    # campaigns
    def upload_campaign(self, csv_bytes: bytes, filename: str, settings_json: str) -> dict[str, Any]:
        return self.request("POST", "/v1/campaigns/upload", files={"contacts": (filename, csv_bytes, "text/csv")},
                            data={"campaign": settings_json})

    def campaign(self, campaign_id: str, action: str = "") -> dict[str, Any]:
        if action:
            return self.request("POST", f"/v1/campaigns/{campaign_id}/{action}")
        return self.request("GET", f"/v1/campaigns/{campaign_id}")

    def list_campaigns(self) -> dict[str, Any]:
        return self.request("GET", "/v1/campaigns")

    # do-not-call
    def dnc_add(self, numbers: list[str]) -> dict[str, Any]:
        return self.request("POST", "/v1/do-not-call", json={"numbers": numbers})

    def dnc_remove(self, number: str) -> dict[str, Any]:
        return self.request("DELETE", f"/v1/do-not-call/{number}")

    def dnc_check(self, number: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/do-not-call/{number}")

    def dnc_list(self) -> dict[str, Any]:
        return self.request("GET", "/v1/do-not-call", params={"limit": 1000})
