"""`python -m voicebot_gateway`: serve the gateway, draining open streams on SIGTERM."""

from __future__ import annotations

import gc

from voicebot_core.logs import setup_logging
from voicebot_core.serving import serve
from voicebot_core.settings import load_settings
from voicebot_core.telemetry import setup_tracing
from voicebot_gateway.app import create_app, drain
from voicebot_gateway.media_relay import StreamRelayProtocol
from voicebot_gateway.settings import GatewaySettings


def main() -> None:
    settings = load_settings(GatewaySettings)  # exits with the error on a default secret outside dev mode
    setup_logging("gateway", settings.log_level, settings.log_json, settings.mask_phone_numbers)
    setup_tracing("voicebot-gateway")
    app = create_app(settings)
    # What exists now (modules, app, settings) lives as long as the process: keep it out of the
    # garbage collector's full passes, which would pause every relayed stream while they run.
    gc.collect()
    gc.freeze()
    ws = StreamRelayProtocol if settings.gateway_media_path == "relay" else "auto"
    serve(app, settings.gateway_host, settings.gateway_port, drain=lambda: drain(app),
          log_level=settings.log_level, ws=ws, trusted_proxies=settings.trusted_proxies)


if __name__ == "__main__":
    main()
