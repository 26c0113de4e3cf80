"""A simulated caller, shared by the Twilio emulator (which plays it) and the bot-worker's fake providers
(which transcribe and speak it): one definition of what a test caller says and sounds like.

    formant_voice   deterministic speech-like audio that a VAD accepts, no model needed
    caller_script   the caller-script YAML format, its loader, and the builtin scripts (./scripts)
"""
