"""The pages a person opens on a local stack: the emulator's softphone and the dialer's console."""

from __future__ import annotations

from voicebot_devstack.stack import Stack


def page_links(stack: Stack) -> list[str]:
    """Where a person talks to the agent and watches the calls. The console link hands the page this
    stack's API key in the URL fragment, which the browser never sends to a server."""
    lines = [f"  softphone   {stack.urls['emulator']}/softphone   (call the agent from this browser's microphone)"]
    if "dialer" in stack.urls:
        lines.append(f"  console     {stack.urls['dialer']}/console/#key={stack.api_key}   (live calls, history, "
                     "campaigns, workers)")
    return lines
