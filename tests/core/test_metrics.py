import ast
import subprocess
import sys
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.metrics import MetricWrapperBase

from voicebot_core import metrics
from voicebot_devstack.processes import PYTHONPATH

ROOT = Path(__file__).resolve().parents[2]
LABELLED = {name: value for name, value in vars(metrics).items()
            if isinstance(value, MetricWrapperBase) and value._labelnames}


def _series(metric: MetricWrapperBase, values: tuple[str, ...]) -> str:
    name = metric._name + ("_total" if metric._type == "counter" else "_count" if metric._type == "histogram" else "")
    labels = ",".join(f'{label}="{value}"' for label, value in zip(metric._labelnames, values, strict=True))
    return f"{name}{{{labels}}} 0.0"


def test_call_outcome_series_exist_at_zero_before_the_first_call():
    text = generate_latest().decode()
    for direction in ("inbound", "outbound"):
        for outcome in ("completed", "busy", "no-answer", "failed", "machine", "transferred"):
            assert f'voicebot_call_outcomes_total{{direction="{direction}",outcome="{outcome}"}}' in text


def _fresh_exposition() -> str:
    """/metrics of a process that has imported voicebot_core.metrics and counted nothing (this
    process's registry holds what earlier tests counted)."""
    code = ("from prometheus_client import generate_latest; import voicebot_core.metrics; "
            "print(generate_latest().decode())")
    return subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": PYTHONPATH}, check=True,
                          capture_output=True, text=True, timeout=60).stdout


def test_every_labelled_metric_exports_its_known_series_at_zero():
    assert LABELLED, "no labelled metric found"
    assert set(LABELLED.values()) == set(metrics.KNOWN_SERIES), "a labelled metric without its known label values"
    text = _fresh_exposition()
    for name, metric in LABELLED.items():
        assert metrics.KNOWN_SERIES[metric], name
        for values in metrics.KNOWN_SERIES[metric]:
            assert _series(metric, values) in text, (name, values)
    assert 'voicebot_dial_placements_total{result="unreachable"} 0.0' in text
    assert 'voicebot_dial_retries_total{reason="placement-lost"} 0.0' in text
    assert 'voicebot_tool_calls_total{tool="transfer_to_human"} 0.0' in text
    assert 'voicebot_dial_queue_depth{state="placing"} 0.0' in text


def _label_calls(tree: ast.AST) -> list[tuple[str, dict[str, str], int]]:
    """(metric name, literal label values, line) of every `<METRIC>.labels(label="literal", ...)`."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "labels"):
            continue
        target = node.func.value
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in LABELLED:
            literal = {kw.arg: kw.value.value for kw in node.keywords
                       if kw.arg and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str)}
            found.append((name, literal, node.lineno))
    return found


def test_every_literal_label_value_in_the_code_is_a_known_one():
    """A label value the code counts but the known set lacks would be born at its first event."""
    checked = 0
    for path in sorted([*ROOT.glob("services/*/voicebot_*/**/*.py"), *ROOT.glob("packages/*/voicebot_*/**/*.py")]):
        for name, literal, line in _label_calls(ast.parse(path.read_text(), str(path))):
            metric = LABELLED[name]
            for label, value in literal.items():
                known = {values[metric._labelnames.index(label)] for values in metrics.KNOWN_SERIES[metric]}
                assert value in known, f"{path.relative_to(ROOT)}:{line}: {name} {label}={value!r} not in {known}"
                checked += 1
            if len(literal) == len(metric._labelnames):
                assert tuple(literal[label] for label in metric._labelnames) in metrics.KNOWN_SERIES[metric], (
                    f"{path.relative_to(ROOT)}:{line}: {name} {literal}")
    assert checked >= 20  # the services' .labels() calls were found
