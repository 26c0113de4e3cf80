"""One whole emulated call for the benchmarks: placed through the emulator's control API, waited for,
and its report (what the phone said and heard, and when) returned."""

from __future__ import annotations

from typing import Any

import httpx

CALLER = "+15550001111"


def place(emulator: str, number: str, script: str | dict[str, Any], timeout_s: float = 280) -> dict[str, Any]:
    with httpx.Client(base_url=emulator, timeout=timeout_s + 20) as http:
        sid = http.post("/emulator/calls", json={"from": CALLER, "to": number, "script": script}
                        ).raise_for_status().json()["call_sid"]
        http.get(f"/emulator/calls/{sid}/wait", params={"timeout": timeout_s}, timeout=timeout_s + 20)
        return http.get(f"/emulator/calls/{sid}").raise_for_status().json()
