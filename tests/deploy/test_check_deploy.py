"""scripts/check-deploy.sh must fail on stale k8s/ manifests and on kubernetes-validate WARNs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, tools_dir


@pytest.fixture
def repo_copy(tools_bin: Path, tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for part in ("scripts", "charts", "k8s", "docker"):
        shutil.copytree(REPO / part, root / part)
    (root / "tests" / "deploy").mkdir(parents=True)
    shutil.copy(REPO / "tests" / "deploy" / "checkov-skips.yaml", root / "tests" / "deploy")
    return root


def check(root: Path, *steps: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHECK_DEPLOY_ONLY": " ".join(steps)}
    return subprocess.run(["bash", "scripts/check-deploy.sh", str(tools_dir())], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_committed_k8s_manifests_pass(repo_copy):
    result = check(repo_copy, "step_k8s_in_sync", "step_k8s_validate", "step_guards")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "check-deploy: all checks passed" in result.stdout


def test_stale_k8s_manifests_fail(repo_copy):
    rendered = repo_copy / "k8s" / "base" / "voicebot.yaml"
    rendered.write_text(rendered.read_text().replace("terminationGracePeriodSeconds: 3660",
                                                     "terminationGracePeriodSeconds: 3661", 1))
    result = check(repo_copy, "step_k8s_in_sync")
    assert result.returncode == 1
    assert "k8s/base/voicebot.yaml is stale: run scripts/render-k8s.sh" in result.stdout


def test_a_kubernetes_validate_warning_fails(repo_copy):
    # policy/v1beta1 PodDisruptionBudget is gone from the schemas: kubernetes-validate only WARNs (rc 0).
    extra = repo_copy / "k8s" / "base" / "legacy-pdb.yaml"
    extra.write_text(yaml.safe_dump({"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget",
                                     "metadata": {"name": "legacy", "namespace": "voicebot"},
                                     "spec": {"maxUnavailable": 1}}))
    kustomization = repo_copy / "k8s" / "base" / "kustomization.yaml"
    doc = yaml.safe_load(kustomization.read_text())
    doc["resources"].append("legacy-pdb.yaml")
    kustomization.write_text(yaml.safe_dump(doc))
    result = check(repo_copy, "step_k8s_validate")
    assert result.returncode == 1
    assert "WARN" in result.stdout and "PodDisruptionBudget" in result.stdout


def test_custom_resources_are_checked_against_their_schema(tools_bin, tmp_path):
    rendered = tmp_path / "rules.yaml"
    rendered.write_text(yaml.safe_dump({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
        "metadata": {"name": "voicebot"},
        "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0", "for": "2 minutes"}]}]},
    }))
    python = tools_dir() / "venv-validate" / "bin" / "python"
    result = subprocess.run([str(python if python.exists() else sys.executable),
                             str(REPO / "scripts" / "deploy_manifests.py"), str(rendered), str(tmp_path / "b.yaml")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "spec/groups/0/rules/0/for" in result.stderr
