"""haproxy on loopback in front of several gateways: the URL Twilio (the emulator) reaches.

Round-robin, no affinity: a call's webhook and its media stream may land on different gateways (the
call's state is in Redis, the stream URL carries the call SID). A gateway is taken out of rotation as
soon as its /readyz answers 503 (draining) or it stops answering; a webhook that a draining gateway
refuses with 503, or a connection it refuses, is retried on another one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from voicebot_devstack.processes import Process

CHECK_INTERVAL_MS = 300  # /readyz polled this often: a draining gateway leaves rotation within it
TUNNEL_TIMEOUT = "2h"  # an idle media stream is never cut by the LB (Twilio pings every 20 s anyway)
READY_PATH = "/lb/ready"


def haproxy_binary() -> str | None:
    """haproxy on PATH or in /usr/sbin (`make deps` installs the Debian package), else None."""
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")


def haproxy_config(port: int, backends: dict[str, int]) -> str:
    servers = "\n".join(f"  server {name} 127.0.0.1:{backend_port} check" for name, backend_port in backends.items())
    return f"""global
  maxconn 4096
  log stdout format raw local0 info

defaults
  mode http
  log global
  # one line a request: which gateway served it (<server name> after the backend's name)
  log-format "%ci:%cp %b/%s %ST %{{+Q}}r %Tt"
  option http-server-close
  timeout connect 2s
  timeout check 1s  # a /readyz answer slower than this counts as a failed check (not the 0.3 s interval)
  timeout client 60s
  timeout server 60s
  timeout tunnel {TUNNEL_TIMEOUT}
  timeout client-fin 5s
  # the whole webhook body before a gateway is picked: else a 503 is not retried (the body is gone)
  option http-buffer-request
  # a refused connection or a draining gateway's 503: the request goes to another gateway
  retries 3
  option redispatch 1
  retry-on conn-failure empty-response 503

frontend public
  bind 127.0.0.1:{port}
  # answered by haproxy itself: 200 once every gateway is in rotation (the stack waits for it)
  monitor-uri {READY_PATH}
  monitor fail if {{ nbsrv(gateways) lt {len(backends)} }}
  default_backend gateways

backend gateways
  balance roundrobin
  option httpchk GET /readyz
  default-server inter {CHECK_INTERVAL_MS} fall 1 rise 1
{servers}
"""


def load_balancer_process(run_dir: Path, port: int, backends: dict[str, int]) -> Process:
    """haproxy in the foreground (`-db`), so the stack stops it like its other processes."""
    binary = haproxy_binary()
    if binary is None:
        raise RuntimeError("several gateways need haproxy in front of them (make deps, or apt-get install haproxy)")
    config = run_dir / "haproxy.cfg"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(haproxy_config(port, backends))
    return Process("load-balancer", [binary, "-db", "-f", str(config)], {}, run_dir / "logs" / "load-balancer.log",
                   f"http://127.0.0.1:{port}{READY_PATH}")
