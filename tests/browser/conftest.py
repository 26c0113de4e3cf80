"""Headless Chromium (the Debian package, driven by Playwright) against the whole stack as processes:
emulator (with the softphone page), gateway, a bot-worker on the fake providers, the dialer (with the
console). The microphone is Chromium's fake capture device playing a WAV of a caller turn."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Browser, sync_playwright

from helpers.constants import TEST_PROFILES_PATH
from helpers.servers import ROOT
from voicebot_core import audio
from voicebot_devstack.stack import Stack, StackConfig
from voicebot_simulation import formant_voice

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = ROOT / "run" / "screenshots"
CALLER_RATE = 16_000
# The caller's first line of the three-turns script (the fake STT answers with it), after enough
# silence for the greeting to finish, then silence for the reply.
CALLER_LINE = "I would like to check my order status"
LEAD_SILENCE_S, TAIL_SILENCE_S = 5.0, 20.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_url) -> Iterator[Stack]:
    stack = Stack(StackConfig(run_dir=tmp_path_factory.mktemp("browser-stack"), workers=1, worker_capacity=4,
                              profiles_path=TEST_PROFILES_PATH, redis_prefix=f"browser-{int(time.time() * 1000)}",
                              dialer=True))
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def caller_line() -> str:
    return CALLER_LINE


@pytest.fixture(scope="module")
def caller_wav(tmp_path_factory) -> Path:
    speech = formant_voice.synthesize(CALLER_LINE, CALLER_RATE)
    silence = lambda seconds: np.zeros(int(seconds * CALLER_RATE), dtype=np.int16)  # noqa: E731
    pcm = np.concatenate([silence(LEAD_SILENCE_S), speech, silence(TAIL_SILENCE_S)])
    return audio.write_wav(tmp_path_factory.mktemp("caller") / "caller.wav", pcm, CALLER_RATE)


@pytest.fixture(scope="module")
def browser(caller_wav: Path) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `make deps` installs the Debian package")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={caller_wav}%noloop",
            "--autoplay-policy=no-user-gesture-required"])
        yield browser
        browser.close()


@pytest.fixture
def screenshot(request):
    """Saves a full-page screenshot under run/screenshots/<test>-<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{request.node.name}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
