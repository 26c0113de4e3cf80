"""Code shared by every voicebot service: settings, Redis keys, the worker registry,
Twilio protocol types, signature checks, call records and telemetry."""
