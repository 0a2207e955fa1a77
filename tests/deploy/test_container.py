"""The image and its manifests: root-owned code, no secrets in the build context, locked-down containers.

No Docker engine runs here: test_deploy runs the Dockerfile's command itself.
"""

from __future__ import annotations

import re

import pytest

from tests import PROJECT_DIR

pytestmark = pytest.mark.pure


def test_dockerfile__code_belongs_to_root_and_only_var_to_the_runtime_user():
    dockerfile = (PROJECT_DIR / "Dockerfile").read_text()
    assert "--chown" not in dockerfile  # COPY leaves the code root-owned: the app cannot rewrite itself
    assert re.search(r"chown -R dbops:dbops /app/var\b", dockerfile)
    assert re.search(r"^USER dbops$", dockerfile, re.M)


def test_dockerignore__keeps_secrets_out_of_the_build_context():
    ignored = (PROJECT_DIR / ".dockerignore").read_text().split()
    for pattern in (".env", ".env.*", "*.pem", "*.key", "var"):
        assert pattern in ignored


def test_kubernetes__every_container_is_locked_down():
    for manifest in sorted((PROJECT_DIR / "ops" / "kubernetes").glob("*.yaml")):
        text = manifest.read_text()
        containers = len(re.findall(r"^\s+- name: \S+\n\s+image:", text, re.M))
        assert containers >= 1, manifest.name
        for setting in ("allowPrivilegeEscalation: false", "readOnlyRootFilesystem: true", 'drop: ["ALL"]'):
            assert text.count(setting) == containers, f"{manifest.name}: {setting}"
        assert "runAsNonRoot: true" in text and "seccompProfile: {type: RuntimeDefault}" in text
