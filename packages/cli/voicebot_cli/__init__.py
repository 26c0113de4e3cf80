"""`voicebot` command line: dial, follow calls, run campaigns against the dialer REST API."""
