"""Bot-worker: one pipecat pipeline per phone call, fed by the gateway over a WebSocket."""
