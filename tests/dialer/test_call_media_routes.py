"""GET /v1/calls/{id}/recording and /transcript: only with an API key, by dial job id or Call SID, from
what the bot-worker stored (the object store; the transcript in Redis while the call runs)."""

from __future__ import annotations

import asyncio
import io
import wave

import numpy as np
import pytest
from fastapi.testclient import TestClient

from voicebot_core.call_media import CallMedia
from voicebot_core.calls import CallStore
from voicebot_core.object_store import FilesystemObjectStore
from voicebot_core.redis_client import connect
from voicebot_core.redis_keys import RedisKeys
from voicebot_dialer.api import build_asgi_app
from voicebot_dialer.service import DialerService
from voicebot_dialer.settings import DialerSettings

SID = "CA" + "5e" * 16
CALL = {"to": "+14155550123", "agent_profile": "sales"}
ENTRIES = [{"role": "assistant", "text": "Hi Sam", "at": 1.0}, {"role": "user", "text": "Hello", "at": 2.0}]


def _bot_worker_attaches(settings: DialerSettings, sid: str, transcript: list | None = None) -> None:
    async def write() -> None:
        client = connect(settings.redis_url)
        calls = CallStore(client, RedisKeys(prefix=settings.redis_prefix))
        await calls.upsert(sid, worker_id="w1")
        if transcript is not None:
            await calls.save_transcript(sid, transcript)
        await client.aclose()

    asyncio.run(write())


@pytest.fixture
def media(dialer_settings: DialerSettings) -> CallMedia:
    return CallMedia(FilesystemObjectStore(dialer_settings.storage_dir))


def _store_two_segments(media: CallMedia) -> None:
    for seq, value in enumerate((100, 200)):
        pcm = np.full((8000, 2), value, dtype=np.int16).tobytes()  # 1 s each
        media.put_recording_segment(SID, "w1", seq, pcm, 8000, 2, cut_at=1_764_489_600.0 + seq)


def test_the_recording_is_served_only_with_an_api_key(api: TestClient, dialer_settings: DialerSettings,
                                                      media: CallMedia) -> None:
    _bot_worker_attaches(dialer_settings, SID)
    _store_two_segments(media)
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}):
        refused = api.get(f"/v1/calls/{SID}/recording", headers=headers)
        assert refused.status_code == 401 and refused.headers["content-type"] == "application/json"
        assert api.get(f"/v1/calls/{SID}/transcript", headers=headers).status_code == 401
    response = api.get(f"/v1/calls/{SID}/recording")
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["cache-control"] == "no-store"
    with wave.open(io.BytesIO(response.content)) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getnframes()) == (2, 8000, 16000)
        samples = np.frombuffer(wav.readframes(16000), dtype=np.int16).reshape(-1, 2)
    assert (samples[0, 0], samples[-1, 0]) == (100, 200), "both segments, in order"


def test_a_read_scope_key_reads_and_a_dial_job_id_names_its_call(dialer_settings: DialerSettings,
                                                                  media: CallMedia, api: TestClient) -> None:
    _bot_worker_attaches(dialer_settings, SID, ENTRIES)
    _store_two_segments(media)
    job_id = api.post("/v1/calls", json=CALL).json()["id"]
    DialerService(dialer_settings).handle_callback(job_id, 1, "status", {"CallSid": SID, "CallStatus": "completed"})
    reader_settings = dialer_settings.model_copy(update={"dialer_api_keys": "reader-key:read"})
    with TestClient(build_asgi_app(reader_settings), headers={"Authorization": "Bearer reader-key"}) as reader:
        by_job = reader.get(f"/v1/calls/{job_id}/recording")
        assert by_job.status_code == 200 and by_job.content == reader.get(f"/v1/calls/{SID}/recording").content
        transcript = reader.get(f"/v1/calls/{job_id}/transcript")
    assert transcript.status_code == 200 and transcript.headers["cache-control"] == "no-store"
    assert transcript.json() == {"call_sid": SID, "entries": ENTRIES}


def test_the_stored_transcript_wins_over_the_live_one(api: TestClient, dialer_settings: DialerSettings,
                                                      media: CallMedia) -> None:
    _bot_worker_attaches(dialer_settings, SID, ENTRIES[:1])  # during the call: what the worker saved so far
    assert api.get(f"/v1/calls/{SID}/transcript").json()["entries"] == ENTRIES[:1]
    media.put_transcript(SID, ENTRIES)  # the call ended
    assert api.get(f"/v1/calls/{SID}/transcript").json()["entries"] == ENTRIES


def test_unknown_calls_and_calls_without_media_are_404(api: TestClient, dialer_settings: DialerSettings) -> None:
    unknown = "CA" + "00" * 16
    for path in (f"/v1/calls/{unknown}/recording", f"/v1/calls/{unknown}/transcript",
                 "/v1/calls/dj_missing/recording", "/v1/calls/..%2F..%2Fetc/recording"):
        response = api.get(path)
        assert response.status_code == 404, (path, response.text)
        assert "error" in response.json()
    _bot_worker_attaches(dialer_settings, SID)
    assert api.get(f"/v1/calls/{SID}/recording").json() == {"error": f"no recording of call {SID}", "detail": []}
    assert api.get(f"/v1/calls/{SID}/transcript").status_code == 404
    not_placed = api.post("/v1/calls", json=CALL).json()["id"]
    assert "has not placed a call" in api.get(f"/v1/calls/{not_placed}/recording").json()["error"]
