"""A local Twilio: the REST subset our services use, and a simulated phone on Media Streams.

    python -m voicebot_emulator [serve]            # FastAPI app on 127.0.0.1:8060
    python -m voicebot_emulator call --script three-turns   # place an inbound call, print its timeline

Twilio side (the real twilio SDK works against it, HTTP Basic auth with the account SID/token):
    POST/GET /2010-04-01/Accounts/{AC}/Calls.json, GET/POST .../Calls/{CA}.json,
    GET .../Recordings.json, .../Recordings/{RE}.json|.wav, .../Calls/{CA}/Recordings.json
    GET/POST .../IncomingPhoneNumbers.json, GET/POST/DELETE .../IncomingPhoneNumbers/{PN}.json
    (an inbound call to an owned number fetches TwiML from its VoiceUrl)
Control side (no auth; bind to loopback):
    POST /emulator/calls {"from", "to", "script", "voice_url"?}  -> {"call_sid"}   (inbound call)
    POST|GET|DELETE /emulator/numbers {"+1...": {"answer": human|busy|no-answer|voicemail|fail, ...}}
    GET /emulator/calls/{CA}, /emulator/calls/{CA}/wait?timeout=30, /emulator/calls/{CA}/heard.wav
Softphone (talk to an agent from the browser, over the same path as a phone call):
    GET /softphone (the page), GET /emulator/softphone/config, WebSocket /emulator/softphone/ws
Caller scripts: voicebot_simulation.caller_script (builtins in voicebot_simulation/scripts),
voices: voicebot_emulator.voices.

A call: emulator (every call's state) starts a call_lifecycle.CallRunner (ring, answer, AMD via
amd_simulation, end, recordings), which follows its TwiML with twiml_interpreter; a <Connect>
opens a phone.MediaSession, where bot_playout plays the app's audio and scripted_caller runs the
caller script, or live_caller streams a person live (a softphone call: softphone_bridge speaks the
page's WebSocket protocol; inbound_calls places both kinds of inbound call). Requests to the app
(TwiML fetches, callbacks) go out through call_webhooks and webhook_sender; REST updates reach a
running call through call_updates.
"""
