"""The fault harness's scenarios run here as tests, their counts asserted; the conversation bench's scoring
is checked on phone reports written by hand. bench/ is on the path only while
its fault modules are imported here: left on it, bench/gateway.py would shadow the tests' own `gateway`
package (tests/gateway, a namespace package) for every test module collected after these."""

import importlib
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
try:
    for name in ("fault_harness", "faults", *sorted(path.stem for path in BENCH.glob("faults_*.py")),
                 "emulated_call", "conversation_corpus", "conversation"):
        importlib.import_module(name)
finally:
    sys.path.remove(str(BENCH))
