"""Gateway faults behind the load balancer: two gateways behind haproxy on loopback (round-robin, so a
call's webhook and its stream land on different gateways), `--calls` live inbound calls (fake providers),
then one gateway gets SIGTERM (it drains) or kill -9 mid-call.

  gateway-sigterm  SIGTERM to the gateway relaying most streams once each of its calls had a turn answered;
                   --calls more calls are placed right after it. Every call, live or new, must get through its
                   script; the gateway exits once its streams ended.
  gateway-kill     kill -9 of that gateway: its callers are cut off and their calls must be marked failed
                   (outcome failed, a `gateway-lost` event) within seconds; the other gateway's calls go on.

Figures (faults.py's columns): dropped counts every call for gateway-sigterm, the surviving gateway's calls
for gateway-kill (the killed one's are lost by nature: how many were marked failed, and how fast, is in
recover s and the notes); turns lost and transcr lost likewise.
"""

from __future__ import annotations

import argparse
import re
import signal
import time
from collections.abc import Callable

import httpx
from fault_harness import SCRIPT, Calls, Row, conversation_figures, start_stack, stop_stack, wait_for

from voicebot_devstack.stack import Stack
from voicebot_simulation.caller_script import utterances

GATEWAYS = ("gateway-0", "gateway-1")
STREAM_LINE = re.compile(r"gateways/(?P<server>\S+) 101 \"GET /twilio/stream/(?P<sid>CA\w+) ")
LIVENESS_TIMEOUT_S = 5.0  # VOICEBOT_GATEWAY_LIVENESS_TIMEOUT_S, the shipped default


def relaying(stack: Stack, calls: Calls) -> dict[str, set[str]]:
    """Gateway process name -> the call SIDs whose stream it relays (its liveness set in Redis)."""
    by_pid = {stack.processes[name].pid: name for name in GATEWAYS}
    found: dict[str, set[str]] = {name: set() for name in GATEWAYS}
    for gateway_id in calls.r.zrange(calls.keys.gateways(), 0, -1):
        name = by_pid.get(int(gateway_id.rsplit("-", 2)[1]))
        if name:
            found[name] |= calls.r.smembers(calls.keys.gateway_calls(gateway_id))
    return found


def place_spread(stack: Stack, calls: Calls, n: int) -> list[str]:
    """n calls, each placed once the one before is on a worker. Round-robin alternates webhook and
    stream, so calls placed one by one would all stream through one gateway: a request to the load
    balancer between them shifts the turn, and the streams alternate between the gateways."""
    sids: list[str] = []
    for _ in range(n):
        sid = calls.place()
        sids.append(sid)
        if not wait_for(lambda sid=sid: calls.record(sid).get("worker_id"), timeout=20):
            break
        httpx.get(f"{stack.urls['gateway']}/healthz", timeout=5)
    return sids


def figures_without_fault_columns(row: Row) -> None:
    for column in ("jobs lost", "dbl dials", "max cps"):
        row.cells[column] = "-"


def gateway_fault(row: Row, n: int, kill: bool) -> None:
    stack = start_stack(row.scenario, workers=1, capacity=2 * n, gateways=len(GATEWAYS),
                        extra_env={"VOICEBOT_GATEWAY_LIVENESS_TIMEOUT_S": str(LIVENESS_TIMEOUT_S)})
    try:
        calls = Calls(stack)
        sids = place_spread(stack, calls, n)
        row.set("calls", n)
        if not wait_for(lambda: sum(map(len, relaying(stack, calls).values())) >= len(sids), timeout=20):
            row.note("not every call's stream was in a gateway's set within 20 s")
        streams = relaying(stack, calls)
        victim = max(GATEWAYS, key=lambda name: len(streams[name]))
        on_victim = sorted(streams[victim])
        others = [s for s in sids if s not in streams[victim]]
        row.note(f"streams: {', '.join(f'{name} {len(streams[name])}' for name in GATEWAYS)}; "
                 f"{'kill -9' if kill else 'SIGTERM'} to {victim}")
        if not wait_for(lambda: all(calls.context_has_user_turn(s) for s in on_victim), timeout=40):
            row.note("not every call on the victim had a checkpointed caller turn at the fault")
        proc = stack.processes[victim].popen
        fault_at = time.time()
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        if kill:
            killed(row, calls, sids, on_victim, others, fault_at)
        else:
            drained(row, stack, calls, sids, victim, proc, fault_at, n)
        figures_without_fault_columns(row)
    finally:
        stop_stack(stack)


def drained(row: Row, stack: Stack, calls: Calls, sids: list[str], victim: str, proc, fault_at: float,
            n: int) -> None:
    """SIGTERM: new calls go to the other gateway, the victim's live calls finish, then it exits."""
    new = [calls.place() for _ in range(n)]  # within the load balancer's check interval: some hit the victim
    row.set("calls", len(sids) + len(new))
    reports = calls.finish_all(sids + new)
    conversation_figures(row, calls, reports)
    if wait_for(lambda: proc.poll() is not None, timeout=30):
        row.note(f"{victim} exited with {proc.returncode} after its calls ended (SIGTERM drain)")
    else:
        row.note(f"{victim} still running 30 s after its calls ended")
    row.na("recover s", "nothing to recover: no call left the draining gateway")
    streamed = stream_servers(stack)
    late = [s for s in new if streamed.get(s) == victim]
    row.note(f"{len(new)} calls placed right after SIGTERM: {len(late)} streamed through {victim}, "
             f"{sum(1 for s in new if streamed.get(s) not in (None, victim))} through the other")


def stream_servers(stack: Stack) -> dict[str, str]:
    """Call SID -> the gateway the load balancer sent its stream to (haproxy's log, `log-format` in
    voicebot_devstack.load_balancer: `<client> gateways/<server> <status> "<request line>" <time>`)."""
    found: dict[str, str] = {}
    for line in (stack.config.run_dir / "logs" / "load-balancer.log").read_text(errors="replace").splitlines():
        match = STREAM_LINE.search(line)
        if match:
            found[match["sid"]] = match["server"]
    return found


def killed(row: Row, calls: Calls, sids: list[str], on_victim: list[str], others: list[str],
           fault_at: float) -> None:
    """kill -9: the victim's calls marked failed within seconds, the other gateway's calls unaffected."""
    reports = calls.finish_all(sids)
    conversation_figures(row, calls, {sid: reports[sid] for sid in others})
    row.note(f"dropped, turns lost, transcr lost, rec s lost: the {len(others)} calls on the surviving gateway")

    def gateway_lost_at(sid: str) -> float | None:
        return next((e["at"] for e in calls.events(sid) if e["kind"] == "gateway-lost"), None)

    wait_for(lambda: all(gateway_lost_at(s) for s in on_victim), timeout=LIVENESS_TIMEOUT_S * 3)
    marked = [s for s in on_victim if calls.record(s).get("outcome") == "failed" and gateway_lost_at(s)]
    delays = [gateway_lost_at(s) - fault_at for s in marked]
    turns = len(utterances(SCRIPT))
    cut = sum(1 for s in on_victim if len(reports[s].get("said", [])) < turns or reports[s].get("error"))
    row.note(f"killed gateway's calls: {len(marked)} of {len(on_victim)} marked failed (gateway-lost event); "
             f"{cut} of {len(on_victim)} callers cut off mid-script")
    if delays:
        row.set("recover s", max(delays))
        row.note(f"recover s: kill -9 -> `gateway-lost` event, slowest call; fastest {min(delays):.2f} s "
                 f"(liveness timeout {LIVENESS_TIMEOUT_S:.0f} s)")
    else:
        row.na("recover s", f"none of the {len(on_victim)} calls on the killed gateway was marked failed")


def scenario_gateway_sigterm(args: argparse.Namespace) -> Row:
    row = Row("gateway-sigterm")
    gateway_fault(row, args.calls, kill=False)
    return row


def scenario_gateway_kill(args: argparse.Namespace) -> Row:
    row = Row("gateway-kill")
    gateway_fault(row, args.calls, kill=True)
    return row


SCENARIOS: dict[str, Callable[[argparse.Namespace], Row]] = {
    "gateway-sigterm": scenario_gateway_sigterm,
    "gateway-kill": scenario_gateway_kill,
}
