"""A call's recording and transcript (/v1/calls/{call_id}/recording, /transcript): the only way to read them.

`call_id` is a dial job id (its latest call) or a Call SID (inbound calls have no dial job). Both need an
API key with the `read` scope; the answers are marked not to be cached.
"""

# No `from __future__ import annotations`: FastAPI resolves Depends() of closures at runtime.

import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import Response

from voicebot_core.call_media import CALL_SID, UnreadableRecording
from voicebot_dialer.auth import Auth
from voicebot_dialer.errors import responses
from voicebot_dialer.response_models import CallTranscript
from voicebot_dialer.service import DialerService

log = logging.getLogger(__name__)

CallId = Annotated[str, Path(max_length=200, description="A dial job id (`dj_...`: its latest call) or a Call SID "
                                                         "(`CA...`, inbound calls too).")]
NO_STORE = {"Cache-Control": "no-store"}  # callers' voices and words: no shared cache keeps them
WAV_RESPONSE = {200: {"description": "The stereo recording (caller left, bot right), 16-bit PCM WAV.",
                      "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}}}


def build_router(dialer: DialerService, auth: Auth) -> APIRouter:
    router = APIRouter()

    def call_sid_of(call_id: str) -> str:
        if CALL_SID.match(call_id):
            if dialer.call_records.record(call_id) is None:
                raise HTTPException(404, f"no call {call_id}")
            return call_id
        job = dialer.store.get(call_id)
        if job is None:
            raise HTTPException(404, f"no dial job {call_id}")
        if not job.get("call_sid"):
            raise HTTPException(404, f"dial job {call_id} has not placed a call")
        return job["call_sid"]

    @router.get("/v1/calls/{call_id}/recording", tags=["calls"], operation_id="getCallRecording",
                response_class=Response, responses={**WAV_RESPONSE, **responses(404)}, **auth.route("read"))
    def get_recording(call_id: CallId) -> Response:
        """The call's recording as stored so far (during a call: up to the last stored segment)."""
        call_sid = call_sid_of(call_id)
        try:
            wav = dialer.media.recording_wav(call_sid)
        except UnreadableRecording as exc:
            log.error("stored recording unreadable: %s", exc, extra={"call_sid": call_sid})
            raise HTTPException(500, "the stored recording could not be read") from None
        if wav is None:
            raise HTTPException(404, f"no recording of call {call_sid}")
        return Response(wav, media_type="audio/wav", headers={
            **NO_STORE, "Content-Disposition": f'attachment; filename="{call_sid}.wav"'})

    @router.get("/v1/calls/{call_id}/transcript", tags=["calls"], operation_id="getCallTranscript",
                response_model=CallTranscript, responses=responses(404), **auth.route("read"))
    def get_transcript(call_id: CallId) -> Response:
        """The call's turns, as stored after the bot's last turn (the whole call once it has ended)."""
        call_sid = call_sid_of(call_id)
        entries: list[dict[str, Any]] | None = dialer.media.transcript(call_sid)
        if entries is None:
            entries = dialer.call_records.transcript(call_sid)
        if entries is None:
            raise HTTPException(404, f"no transcript of call {call_sid}")
        body = CallTranscript(call_sid=call_sid, entries=entries)
        return Response(body.model_dump_json(), media_type="application/json", headers=NO_STORE)

    return router
