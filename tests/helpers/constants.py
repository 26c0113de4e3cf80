"""Values several test packages share."""

from helpers.servers import ROOT

# Agent profiles for tests: deterministic fake providers moving real audio, numbers mapped to them.
TEST_PROFILES_PATH = ROOT / "tests" / "agent-profiles.yaml"
WORKER_TICKET_SECRET = "worker-test-ticket-secret"
# The profiles the project ships (demo, cloud, outbound sales).
SHIPPED_PROFILES_PATH = ROOT / "config" / "agent-profiles.yaml"
