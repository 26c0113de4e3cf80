"""A call's recording as the dialer API serves it: the stored segments joined (voicebot_core.call_media)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voicebot_core.call_media import CallMedia, decode_wav
from voicebot_core.object_store import FilesystemObjectStore


def stored_recording(storage_dir: str | Path, call_sid: str) -> tuple[np.ndarray, int]:
    """(int16 samples shaped [frames, channels], sample rate) of the call's stored recording."""
    wav = CallMedia(FilesystemObjectStore(storage_dir)).recording_wav(call_sid)
    assert wav is not None, f"no recording stored for {call_sid} in {storage_dir}"
    audio = decode_wav(wav)
    return np.frombuffer(audio.pcm, dtype=np.int16).reshape(-1, audio.num_channels), audio.sample_rate
