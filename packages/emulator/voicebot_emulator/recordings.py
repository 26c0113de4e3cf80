"""A call's audio on disk once it ends: what the phone heard, and the recording Twilio would have made."""

from __future__ import annotations

from pathlib import Path

from voicebot_core import audio
from voicebot_emulator.call_audio import CallAudio
from voicebot_emulator.model import Call, EmulatedCallLog, Recording, new_sid


def save_call_audio(call: Call, call_audio: CallAudio, directory: Path, call_log: EmulatedCallLog) -> None:
    """`{sid}-heard.wav` always; with `Record=true` a Recording resource too (mono mix or dual channel)."""
    call_audio.end()
    heard = audio.write_wav(directory / f"{call.sid}-heard.wav", call_audio.render("heard"), 8000)
    call.heard_wav = str(heard)
    if not call.options.record:
        return
    dual = call.options.recording_channels == "dual"
    data = call_audio.stereo() if dual else call_audio.mixed()
    recording = Recording(sid=new_sid("RE"), account_sid=call.account_sid, call_sid=call.sid,
                          path="", channels=2 if dual else 1, duration_s=round(len(data) / 8000))
    recording.path = str(audio.write_wav(directory / f"{recording.sid}.wav", data, 8000))
    call_log.recordings[recording.sid] = recording
    call.recording_sids.append(recording.sid)
