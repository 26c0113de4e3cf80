"""The Twilio REST subset (2010-04-01 Calls, Recordings, IncomingPhoneNumbers) that the real twilio SDK
works against."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import secrets
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.datastructures import FormData

from voicebot_emulator.call_updates import PendingAction
from voicebot_emulator.emulator import Emulator
from voicebot_emulator.incoming_numbers import WRITABLE, IncomingNumber
from voicebot_emulator.model import API_VERSION, Call, CallOptions, new_sid

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
CLIENT_OR_SIP = re.compile(r"^(client:[\w.\-]+|sip:.+@.+)$")
CALLBACK_EVENTS = ("initiated", "ringing", "answered", "completed")


class TwilioError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"code": self.code, "message": self.message,
             "more_info": f"https://www.twilio.com/docs/errors/{self.code}", "status": self.status},
            status_code=self.status,
        )


def _check_auth(request: Request, emulator: Emulator, account_sid: str) -> None:
    expected_sid = emulator.settings.twilio_account_sid
    token = emulator.settings.twilio_auth_token.get_secret_value()
    header = request.headers.get("authorization", "")
    user = password = ""
    if header.lower().startswith("basic "):
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    if not (secrets.compare_digest(user, expected_sid) and secrets.compare_digest(password, token)):
        raise TwilioError(401, 20003, "Authenticate")
    if account_sid != expected_sid:
        raise TwilioError(404, 20404, f"The requested resource /2010-04-01/Accounts/{account_sid} was not found")


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


def _number(value: str | None, field: str, code: int) -> str:
    if not value:
        raise TwilioError(400, code, f"Required parameter \"{field}\" missing.")
    if not (E164.match(value) or CLIENT_OR_SIP.match(value)):
        raise TwilioError(400, code, f"The '{field}' number {value} is not a valid phone number.")
    return value


def _options(form: FormData) -> CallOptions:
    url, twiml = form.get("Url"), form.get("Twiml")
    if not url and not twiml:
        raise TwilioError(400, 21205, "Url parameter is required.")
    if url and twiml:
        raise TwilioError(400, 21205, "Url and Twiml are mutually exclusive: pass only one.")
    events: list[str] = []
    for value in form.getlist("StatusCallbackEvent"):
        events.extend(str(value).replace(",", " ").split())
    unknown = [e for e in events if e not in CALLBACK_EVENTS]
    if unknown:
        raise TwilioError(400, 21626, f"Invalid StatusCallbackEvent values: {', '.join(unknown)}")
    machine_detection = form.get("MachineDetection") or None
    if machine_detection not in (None, "Enable", "DetectMessageEnd"):
        raise TwilioError(400, 21626, f"MachineDetection must be Enable or DetectMessageEnd, not {machine_detection}")
    try:
        timeout_s = float(form.get("Timeout") or 60)
        time_limit_s = float(form.get("TimeLimit") or 4 * 3600)
    except ValueError:
        raise TwilioError(400, 21626, "Timeout and TimeLimit must be numbers of seconds.") from None
    return CallOptions(
        url=str(url) if url else None,
        method=str(form.get("Method") or "POST").upper(),
        twiml=str(twiml) if twiml else None,
        status_callback=str(form.get("StatusCallback") or "") or None,
        status_callback_method=str(form.get("StatusCallbackMethod") or "POST").upper(),
        status_callback_events=tuple(events) or ("completed",),
        timeout_s=timeout_s,
        time_limit_s=time_limit_s,
        machine_detection=str(machine_detection) if machine_detection else None,
        async_amd=_flag(str(form.get("AsyncAmd") or "")),
        async_amd_callback=str(form.get("AsyncAmdStatusCallback") or "") or None,
        async_amd_callback_method=str(form.get("AsyncAmdStatusCallbackMethod") or "POST").upper(),
        record=_flag(str(form.get("Record") or "")),
        recording_channels=str(form.get("RecordingChannels") or "mono"),
    )


def _page(request: Request, key: str, items: list[dict[str, Any]], base_uri: str) -> dict[str, Any]:
    query = request.query_params
    try:
        page_size = max(1, min(1000, int(query.get("PageSize", 50))))
        page = max(0, int(query.get("Page", 0)))
    except ValueError:
        raise TwilioError(400, 20001, "Page and PageSize must be integers.") from None
    start = page * page_size
    chunk = items[start : start + page_size]
    filters = {k: v for k, v in query.items() if k not in ("Page", "PageSize", "PageToken")}

    def uri(page_number: int) -> str:
        return f"{base_uri}?{urlencode({**filters, 'PageSize': page_size, 'Page': page_number})}"

    has_next = start + page_size < len(items)
    return {
        key: chunk,
        "start": start,
        "end": start + len(chunk) - 1 if chunk else start,
        "page": page,
        "page_size": page_size,
        "uri": uri(page),
        "first_page_uri": uri(0),
        "next_page_uri": uri(page + 1) if has_next else None,
        "previous_page_uri": uri(page - 1) if page > 0 else None,
    }


def build_router(emulator: Emulator) -> APIRouter:
    router = APIRouter(prefix=f"/{API_VERSION}/Accounts/{{account_sid}}")

    def find_call(sid: str) -> Call:
        call = emulator.call_log.get(sid)
        if call is None:
            raise TwilioError(404, 20404, f"The requested resource /{API_VERSION}/Accounts/"
                                          f"{emulator.settings.twilio_account_sid}/Calls/{sid}.json was not found")
        return call

    @router.post("/Calls.json")
    async def create_call(account_sid: str, request: Request) -> Response:
        _check_auth(request, emulator, account_sid)
        form = await request.form()
        to = _number(form.get("To"), "To", 21211)  # type: ignore[arg-type]
        from_ = _number(form.get("From"), "From", 21212)  # type: ignore[arg-type]
        options = _options(form)
        fault = emulator.create_faults.take()
        call = Call(sid=new_sid("CA"), account_sid=account_sid, to=to, from_=from_,
                    direction="outbound-api", options=options)
        if fault is None or fault.make_call:
            call.log("created", to=to, from_=from_)
            behaviour, script = emulator.behaviour_for(to)
            emulator.start(call, script, behaviour)
        if fault is None:
            return JSONResponse(call.resource(), status_code=201)
        await asyncio.sleep(fault.delay_s)  # a client whose timeout is shorter has given up by now
        if fault.status == 201:
            return JSONResponse(call.resource(), status_code=201)
        code = 20429 if fault.status == 429 else 20500 if fault.status >= 500 else 20001
        response = TwilioError(fault.status, code, "planned failure (emulator create fault plan)").response()
        if fault.retry_after:
            response.headers["Retry-After"] = fault.retry_after
        return response

    @router.get("/Calls.json")
    async def list_calls(account_sid: str, request: Request) -> Response:
        _check_auth(request, emulator, account_sid)
        query = request.query_params
        calls = [
            c.resource() for c in emulator.call_log.newest_first()
            if (not query.get("To") or c.to == query["To"])
            and (not query.get("From") or c.from_ == query["From"])
            and (not query.get("Status") or c.status == query["Status"])
        ]
        return JSONResponse(_page(request, "calls", calls, f"/{API_VERSION}/Accounts/{account_sid}/Calls.json"))

    @router.get("/Calls/{sid}.json")
    async def fetch_call(account_sid: str, sid: str, request: Request) -> Response:
        _check_auth(request, emulator, account_sid)
        return JSONResponse(find_call(sid).resource())

    @router.post("/Calls/{sid}.json")
    async def update_call(account_sid: str, sid: str, request: Request) -> Response:
        _check_auth(request, emulator, account_sid)
        call = find_call(sid)
        form = await request.form()
        status, twiml, url = form.get("Status"), form.get("Twiml"), form.get("Url")
        runner = emulator.runners[sid]
        if twiml or url:
            if call.terminal:
                raise TwilioError(400, 21220, "Call is not in-progress. Cannot redirect.")
            call.log("rest-update", redirect=str(url) if url else "twiml")
            runner.request(PendingAction("redirect", twiml=str(twiml) if twiml else None,
                                         url=str(url) if url else None,
                                         method=str(form.get("Method") or "POST").upper()))
        elif status in ("completed", "canceled"):
            if not call.terminal and (status == "completed" or call.status != "in-progress"):
                runner.request(PendingAction("hangup" if status == "completed" else "cancel"))
                call.log("rest-update", status=status)
                # answer with the final state, as Twilio does once the hang-up is done
                await _wait_ended(call, timeout_s=5)
        elif status:
            raise TwilioError(400, 21626, f"Status must be completed or canceled, not {status}")
        return JSONResponse(call.resource())

    @router.get("/Calls/{sid}/Recordings.json")
    async def call_recordings(account_sid: str, sid: str, request: Request) -> Response:
        _check_auth(request, emulator, account_sid)
        call = find_call(sid)
        items = [emulator.call_log.recordings[r].resource() for r in call.recording_sids]
        return JSONResponse(_page(request, "recordings", items,
                                  f"/{API_VERSION}/Accounts/{account_sid}/Calls/{sid}/Recordings.json"))

    @router.get("/Recordings.json")
    async def list_recordings(account_sid: str, request: Request) -> Response:
        _check_auth(request, emulator, account_sid)
        call_sid = request.query_params.get("CallSid")
        items = [r.resource() for r in reversed(emulator.call_log.recordings.values())
                 if not call_sid or r.call_sid == call_sid]
        base_uri = f"/{API_VERSION}/Accounts/{account_sid}/Recordings.json"
        return JSONResponse(_page(request, "recordings", items, base_uri))

    @router.get("/Recordings/{sid}.{ext}")
    async def fetch_recording(account_sid: str, sid: str, ext: str, request: Request) -> Response:
        _check_auth(request, emulator, account_sid)
        recording = emulator.call_log.recordings.get(sid)
        if recording is None:
            raise TwilioError(404, 20404, f"The requested resource /{API_VERSION}/Accounts/{account_sid}"
                                          f"/Recordings/{sid}.{ext} was not found")
        if ext == "wav":
            return FileResponse(recording.path, media_type="audio/x-wav")
        return JSONResponse(recording.resource())

    add_incoming_number_routes(router, emulator)
    return router


def add_incoming_number_routes(router: APIRouter, emulator: Emulator) -> None:
    """IncomingPhoneNumbers: list (PhoneNumber, FriendlyName filters), fetch, buy, update, release."""
    numbers = emulator.incoming_numbers

    def base(account_sid: str) -> str:
        return f"/{API_VERSION}/Accounts/{account_sid}/IncomingPhoneNumbers"

    def find(account_sid: str, sid: str) -> IncomingNumber:
        number = numbers.get(sid)
        if number is None:
            raise TwilioError(404, 20404, f"The requested resource {base(account_sid)}/{sid}.json was not found")
        return number

    def writable(form: FormData) -> dict[str, str]:
        fields = {name: str(form.get(name) or "") for name in WRITABLE if name in form}
        for name in ("VoiceUrl", "VoiceFallbackUrl", "StatusCallback"):
            if fields.get(name) and not re.match(r"^https?://", fields[name]):
                raise TwilioError(400, 21502, f"{name} is not a valid URL: {fields[name]}")
        return fields

    def apply(number: IncomingNumber, fields: dict[str, str]) -> IncomingNumber:
        try:
            return numbers.update(number, fields)
        except ValueError as exc:
            raise TwilioError(400, 21626, str(exc)) from None

    @router.get("/IncomingPhoneNumbers.json")
    async def list_numbers(account_sid: str, request: Request) -> Response:
        _check_auth(request, emulator, account_sid)
        query = request.query_params
        items = [n.resource() for n in numbers.matching(query.get("PhoneNumber", ""), query.get("FriendlyName", ""))]
        return JSONResponse(_page(request, "incoming_phone_numbers", items, f"{base(account_sid)}.json"))

    @router.post("/IncomingPhoneNumbers.json")
    async def buy_number(account_sid: str, request: Request) -> Response:
        _check_auth(request, emulator, account_sid)
        form = await request.form()
        phone_number = str(form.get("PhoneNumber") or "")
        if not phone_number:
            raise TwilioError(400, 21421, "PhoneNumber or AreaCode is required.")
        if not E164.match(phone_number):
            raise TwilioError(400, 21421, f"PhoneNumber {phone_number} is not a valid phone number.")
        if numbers.by_number(phone_number) is not None:
            raise TwilioError(400, 21422, f"PhoneNumber {phone_number} is not available.")
        fields = writable(form)
        number = apply(numbers.add(phone_number), fields)
        return JSONResponse(number.resource(), status_code=201)

    @router.get("/IncomingPhoneNumbers/{sid}.json")
    async def fetch_number(account_sid: str, sid: str, request: Request) -> Response:
        _check_auth(request, emulator, account_sid)
        return JSONResponse(find(account_sid, sid).resource())

    @router.post("/IncomingPhoneNumbers/{sid}.json")
    async def update_number(account_sid: str, sid: str, request: Request) -> Response:
        _check_auth(request, emulator, account_sid)
        number = find(account_sid, sid)
        return JSONResponse(apply(number, writable(await request.form())).resource())

    @router.delete("/IncomingPhoneNumbers/{sid}.json")
    async def release_number(account_sid: str, sid: str, request: Request) -> Response:
        _check_auth(request, emulator, account_sid)
        numbers.remove(find(account_sid, sid).sid)
        return Response(status_code=204)


async def _wait_ended(call: Call, timeout_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(call.ended.wait(), timeout=timeout_s)
