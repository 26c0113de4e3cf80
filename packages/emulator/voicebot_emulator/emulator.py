"""The running emulator: every call, the configured numbers, and the client that sends webhooks."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from voicebot_emulator.call_lifecycle import CallRunner
from voicebot_emulator.call_updates import PendingAction
from voicebot_emulator.create_faults import CreateFaultPlan
from voicebot_emulator.incoming_numbers import IncomingNumbers
from voicebot_emulator.model import Call, EmulatedCallLog
from voicebot_emulator.settings import EmulatorSettings
from voicebot_emulator.twiml_interpreter import CallerFactory
from voicebot_emulator.webhook_sender import WebhookSender
from voicebot_simulation.caller_script import Script
from voicebot_simulation.caller_script import load as load_script

log = logging.getLogger(__name__)

DEFAULT_OUTBOUND_SCRIPT = "outbound-default"
DEFAULT_INBOUND_SCRIPT = "three-turns"


class Emulator:
    """State shared by the REST API, the control API and every running call."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.call_log = EmulatedCallLog()
        self.numbers: dict[str, dict[str, Any]] = {}  # how called numbers answer (outbound calls)
        self.incoming_numbers = IncomingNumbers(  # the account's own numbers and their webhooks
            settings.twilio_account_sid,
            [n.strip() for n in settings.emulator_incoming_numbers.split(",") if n.strip()])
        self.webhook_sender = WebhookSender(settings.twilio_auth_token.get_secret_value())
        self.runners: dict[str, CallRunner] = {}
        self.create_faults = CreateFaultPlan()  # planned answers to the next calls.create requests
        self._tasks: set[asyncio.Task] = set()

    def start(self, call: Call, script: Script, behaviour: dict[str, Any],
              caller: CallerFactory | None = None) -> CallRunner:
        """Run the call in its own task; `caller` is who streams (default: the script's caller)."""
        self.call_log.add(call)
        runner = CallRunner(self, call, script, behaviour, caller)
        self.runners[call.sid] = runner
        log.info("call %s (%s) from %s to %s, script %s", call.sid, call.direction, call.from_, call.to, script.name)
        task = asyncio.create_task(runner.run(), name=f"call-{call.sid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return runner

    def behaviour_for(self, number: str) -> tuple[dict[str, Any], Script]:
        """How a called number answers (outbound calls), and the caller script it plays once answered."""
        behaviour = dict(self.numbers.get(number) or {"answer": "human"})
        script = load_script(behaviour.get("script") or DEFAULT_OUTBOUND_SCRIPT)
        return behaviour, script

    async def aclose(self) -> None:
        for runner in self.runners.values():
            if not runner.call.terminal:
                runner.request(PendingAction("hangup"))
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        for task in self._tasks:
            task.cancel()
        await self.webhook_sender.aclose()
