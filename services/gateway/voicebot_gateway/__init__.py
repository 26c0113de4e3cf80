"""Gateway: terminates Twilio webhooks and Media Streams, pins each call to a bot-worker."""
