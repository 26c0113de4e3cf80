"""`python -m voicebot_worker`: serve the bot-worker (settings from VOICEBOT_* environment variables)."""

from __future__ import annotations

from voicebot_core.logs import setup_logging
from voicebot_core.serving import serve
from voicebot_core.settings import load_settings
from voicebot_core.telemetry import setup_tracing
from voicebot_worker.settings import WorkerSettings


def main() -> None:
    settings = load_settings(WorkerSettings)  # exits with the error on a default secret outside dev mode
    setup_logging("bot-worker", settings.log_level, settings.log_json, settings.mask_phone_numbers)
    setup_tracing("voicebot-bot-worker")
    from voicebot_worker.app import create_app  # after logging: importing pipecat already logs

    app = create_app(settings)
    serve(app, settings.worker_host, settings.worker_port, drain=app.state.worker.drain, log_level=settings.log_level)


if __name__ == "__main__":
    main()
