"""A person's path through the pages, in a real browser: call the agent from the softphone, watch the
call live in the console, find it in history and play its recording, steer a campaign."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page

THREE_TURNS = "+15557000001"  # tests/agent-profiles.yaml: greeting, then a reply to CALLER_LINE
OUTBOUND = "+15557000006"
GREETING = "How can I help you today?"
REPLY = "What is your order number?"
SECOND = 1000  # ms, Playwright's unit


def _console(page: Page, stack, route: str) -> None:
    page.goto(f"{stack.urls['dialer']}/console/#key={stack.api_key}")
    page.wait_for_selector("nav a.active[data-nav=live]")  # the page took the key and opened live calls
    assert stack.api_key not in page.url  # and dropped it from the address bar
    page.evaluate("route => { location.hash = route; }", route)


def _bot_audio_ms_once_quiet(page: Page, quiet_ms: int = 500) -> float:
    """The bot audio received once none has come for `quiet_ms`: the whole greeting, before the caller
    speaks (the fake microphone's line starts 5 s into the call)."""
    page.wait_for_function("""quietMs => {
        const now = Date.now(), heard = window.softphone.botAudioMs;
        if (window.lastBotAudioMs !== heard) { window.lastBotAudioMs = heard; window.lastBotAudioAt = now; }
        return now - window.lastBotAudioAt >= quietMs;
    }""", arg=quiet_ms, polling=100, timeout=10 * SECOND)
    return page.evaluate("window.softphone.botAudioMs")


def test_a_softphone_call_is_heard_both_ways_watched_live_and_kept_in_history(stack, browser, screenshot, caller_line):
    context = browser.new_context()
    phone = context.new_page()
    phone.goto(f"{stack.urls['emulator']}/softphone")
    phone.fill("#to", THREE_TURNS)
    phone.click("#call")
    phone.wait_for_function("window.softphone.state === 'in-progress'", timeout=20 * SECOND)
    sid = phone.evaluate("window.softphone.callSid")
    assert sid.startswith("CA")
    # the greeting arrives as audio before the caller says anything (the fake microphone is silent for 5 s)
    phone.wait_for_function("window.softphone.botAudioMs >= 1000", timeout=10 * SECOND)
    screenshot(phone, "softphone-in-call")
    greeting_ms = _bot_audio_ms_once_quiet(phone)

    console = context.new_page()
    _console(console, stack, "#/live")
    console.wait_for_selector(f"#live-calls tr[data-call-sid='{sid}']", timeout=10 * SECOND)
    screenshot(console, "live-calls")
    console.click(f"#live-calls a[href='#/calls/{sid}']")

    # the transcript grows as the call goes: greeting, the caller's line, the agent's reply
    console.locator("#transcript li.turn[data-role=assistant]").nth(1).wait_for(timeout=40 * SECOND)
    turns = console.locator("#transcript li.turn")
    roles = [turns.nth(i).get_attribute("data-role") for i in range(turns.count())]
    texts = [turns.nth(i).inner_text() for i in range(turns.count())]
    assert roles[:3] == ["assistant", "user", "assistant"], texts
    assert GREETING in texts[0] and caller_line in texts[1] and REPLY in texts[2], texts
    assert "ms" in console.locator("#transcript li.turn[data-role=assistant] .latency").first.inner_text()
    screenshot(console, "call-live")

    # and the reply arrived as audio at the softphone, after the greeting's (the transcript shows a
    # reply once it has played, so its audio may all be here already)
    phone.wait_for_function(f"window.softphone.botAudioMs >= {greeting_ms} + 1000", timeout=5 * SECOND)

    phone.click("#hangup")
    phone.wait_for_function("window.softphone.state === 'ended'", timeout=10 * SECOND)
    console.wait_for_selector("#call-summary dd[data-field='state']:text-is('ended')", timeout=15 * SECOND)
    console.wait_for_selector("#recording audio", timeout=15 * SECOND)
    played = console.evaluate("""async () => {
        const audio = document.querySelector('#recording audio');
        if (audio.readyState < 1) await new Promise(r => audio.addEventListener('loadedmetadata', r, {once: true}));
        await audio.play();
        await new Promise(r => setTimeout(r, 700));
        audio.pause();
        return {duration: audio.duration, position: audio.currentTime};
    }""")
    assert played["duration"] > 5 and played["position"] > 0.3, played
    screenshot(console, "call-ended")

    console.evaluate("() => { location.hash = '#/history?number=%2B15550001111'; }")
    console.wait_for_selector(f"#call-history tr[data-call-sid='{sid}']", timeout=10 * SECOND)
    screenshot(console, "history")
    console.evaluate("() => { location.hash = '#/workers'; }")
    console.wait_for_selector("#workers tr[data-worker-id]", timeout=10 * SECOND)
    screenshot(console, "workers")
    context.close()


def test_a_campaign_is_paused_resumed_and_canceled_from_the_console(stack, browser, screenshot):
    api = httpx.Client(base_url=stack.urls["dialer"], headers={"Authorization": f"Bearer {stack.api_key}"})
    campaign = api.post("/v1/campaigns", json={
        "name": "browser-test", "agent_profile": "fake-outbound", "max_concurrent_calls": 1,
        "calls_per_second": 0.1, "contacts": [{"to": OUTBOUND}] * 3}).raise_for_status().json()
    row = f"#campaigns tr[data-campaign-id='{campaign['id']}']"
    page = browser.new_page()
    _console(page, stack, "#/campaigns")
    page.wait_for_selector(row, timeout=10 * SECOND)

    page.click(f"{row} button[data-action='pause']")
    page.wait_for_selector(f"{row} .status:text-is('paused')", timeout=10 * SECOND)
    assert api.get(f"/v1/campaigns/{campaign['id']}").json()["status"] == "paused"
    screenshot(page, "campaign-paused")

    page.click(f"{row} button[data-action='resume']")
    page.wait_for_selector(f"{row} .status:text-is('active')", timeout=10 * SECOND)
    assert api.get(f"/v1/campaigns/{campaign['id']}").json()["status"] == "active"

    page.click(f"{row} a")
    page.wait_for_selector("#campaign-jobs tr[data-job-id]", timeout=10 * SECOND)
    assert page.locator("#campaign-jobs tr[data-job-id]").count() == 3
    screenshot(page, "campaign")

    page.click("[data-campaign-id] button[data-action='cancel']")
    page.wait_for_selector("#campaign-status:text-is('canceled')", timeout=10 * SECOND)
    assert api.get(f"/v1/campaigns/{campaign['id']}").json()["status"] == "canceled"
    page.close()
