"""The person on the phone: runs the caller script beside the stream's clock, step by step.

It speaks (through a caller voice, onto the 20 ms clock), waits for the bot to finish a turn,
barges in, presses keys and hangs up. A call keeps its place in the script across the streams
it opens, so a redirected call continues where the caller was.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from voicebot_core import audio
from voicebot_emulator import voices
from voicebot_emulator.bot_playout import TICK_S
from voicebot_emulator.phone import CALLER_HANGUP, SERVER_CLOSED, MediaSession
from voicebot_simulation.caller_script import Script, Step


@dataclass
class ScriptCursor:
    """The call's caller script and how far it got (a call may open several streams)."""

    script: Script
    position: int = 0
    last_step_end: float | None = None

    def next_step(self) -> Step | None:
        if self.position >= len(self.script.steps):
            return None
        self.position += 1
        return self.script.steps[self.position - 1]


class ScriptedCaller:
    def __init__(self, session: MediaSession, cursor: ScriptCursor, linger_s: float) -> None:
        self.session, self.cursor, self.linger_s = session, cursor, linger_s
        self.call = session.call

    async def run(self) -> str:
        """Play the script until the caller hangs up or the server closes; returns which one happened."""
        if self.cursor.last_step_end is None:
            self.cursor.last_step_end = self.call.now()
        while (step := self.cursor.next_step()) is not None:
            self.call.log(f"step:{step.kind}", **{k: v for k, v in step.args.items() if k != "pcm"})
            if step.kind == "hangup":
                self.call.log("caller-hangup")
                return CALLER_HANGUP
            await self._run_step(step)
            self.cursor.last_step_end = self.call.now()
        # the script is over without hanging up: stay on the line a while, as a person would
        if await self.session.wait_server_close(self.linger_s):
            return SERVER_CLOSED
        self.call.log("caller-hangup", why="script ended")
        return CALLER_HANGUP

    async def _run_step(self, step: Step) -> None:
        args = step.args
        if step.kind == "say":
            await self.say(args["text"])
        elif step.kind == "wait_for_bot":
            await self._wait_for_bot(float(args.get("silence_s", 1.0)), float(args.get("timeout_s", 20.0)))
        elif step.kind in ("barge_in", "backchannel"):
            # a backchannel ("uh-huh", a cough) is a barge-in cut short: only its first `seconds` are said
            clip_s = float(args.get("seconds", 0.2)) if step.kind == "backchannel" else None
            sound = self.cursor.script.base_dir / args["play"] if "play" in args and "say" not in args else None
            await self._barge_in(float(args.get("after_s", 0.5)), str(args.get("say", "")),
                                 float(args.get("timeout_s", 20.0)), clip_s, sound)
        elif step.kind == "silence":
            await asyncio.sleep(float(args["seconds"]))
        elif step.kind == "dtmf":
            for digit in args["digits"]:
                await self.session.send_dtmf(digit)
                await asyncio.sleep(0.25)
        elif step.kind == "play":
            path = self.cursor.script.base_dir / args["path"]
            pcm = await asyncio.to_thread(audio.read_wav_mono, path, audio.TELEPHONY_RATE)
            await self.session.send_audio(pcm, {"play": str(path)})
        elif step.kind == "expect_hangup":
            if not await self.session.wait_server_close(float(args.get("timeout_s", 10.0))):
                self.call.log("expect_hangup-timeout")
        elif step.kind == "_pcm":  # emulator-internal: a voicemail greeting or beep
            await self.session.send_audio(args["pcm"], {"audio": args.get("label", "audio")})

    async def say(self, text: str, clip_s: float | None = None, sound: Path | None = None) -> None:
        """Say `text` (or play the WAV `sound`), only its first `clip_s` seconds when given."""
        if sound is not None:
            pcm = await asyncio.to_thread(audio.read_wav_mono, sound, audio.TELEPHONY_RATE)
        else:
            voice = voices.get(self.cursor.script.voice)
            # synthesis takes tens of ms of CPU: keep it off the loop that paces every call's audio
            pcm = await asyncio.to_thread(voice, text, audio.TELEPHONY_RATE)
        if clip_s is not None:
            pcm = pcm[: int(clip_s * audio.TELEPHONY_RATE)]
        await self.session.send_audio(pcm, {"play": str(sound)} if sound is not None else {"text": text})

    async def _wait_for_bot(self, silence_s: float, timeout_s: float) -> None:
        since = self.cursor.last_step_end or 0.0
        deadline = self.call.now() + timeout_s
        playout = self.session.playout
        while self.call.now() < deadline:
            last = playout.last_audible
            if last is not None and last >= since and not playout.pending and self.call.now() - last >= silence_s:
                return
            await asyncio.sleep(TICK_S)
        self.call.log("wait_for_bot-timeout", timeout_s=timeout_s)

    async def _barge_in(self, after_s: float, text: str, timeout_s: float, clip_s: float | None = None,
                        sound: Path | None = None) -> None:
        step_start = self.call.now()
        deadline = step_start + timeout_s
        playout = self.session.playout
        while playout.last_audible is None or playout.last_audible < step_start:
            if self.call.now() >= deadline:
                self.call.log("barge_in-timeout", timeout_s=timeout_s)
                break
            await asyncio.sleep(TICK_S)
        await asyncio.sleep(after_s)
        self.call.log("barge-in" if clip_s is None else "backchannel", text=text or str(sound))
        await self.say(text, clip_s, sound)
