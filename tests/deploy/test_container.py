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


def test_dockerfile__installs_only_what_the_lock_file_hashes():
    dockerfile = (PROJECT_DIR / "Dockerfile").read_text()
    assert "pip install --no-deps --require-hashes -r requirements.txt" in dockerfile
    assert "--hash=sha256:" in (PROJECT_DIR / "requirements.txt").read_text()


def manifests() -> list[dict]:
    import yaml

    return [yaml.safe_load(path.read_text()) for path in sorted((PROJECT_DIR / "ops" / "kubernetes").glob("*.yaml"))]


def pod_spec(manifest: dict) -> dict:
    spec = manifest["spec"]
    return (spec["jobTemplate"]["spec"] if manifest["kind"] == "CronJob" else spec)["template"]["spec"]


def test_kubernetes__fixed_image_tags_and_no_service_account_token():
    for manifest in manifests():
        pod = pod_spec(manifest)
        assert pod["automountServiceAccountToken"] is False, manifest["metadata"]["name"]
        for container in pod["containers"]:
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image


def test_kubernetes__the_backup_job_owns_its_volume_and_reads_the_identity_it_verifies_with():
    (job,) = [m for m in manifests() if m["kind"] == "CronJob"]
    pod = pod_spec(job)
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"]
    key_volume = next(v for v in pod["volumes"] if "secret" in v)
    assert key_volume["secret"]["defaultMode"] == 0o400
    (container,) = pod["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == key_volume["name"])
    identity = next(e["value"] for e in container["env"] if e["name"] == "DATABASE_BACKUP_ENCRYPTION_IDENTITY_FILE")
    assert identity.startswith(mount["mountPath"] + "/") and mount["readOnly"] is True


def test_cron__no_line_sources_the_environment_through_a_shell():
    for path in sorted((PROJECT_DIR / "ops" / "cron").iterdir()):
        lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
        assert "DBOPS_ENV_FILE=/etc/dbops.env" in lines, path.name
        for line in lines:
            assert ". /etc/dbops.env" not in line and "source " not in line and "set -a" not in line, line


def test_env_file__values_are_taken_literally_and_set_variables_win(tmp_path, monkeypatch):
    import os

    from dbops.conf import read_dotenv

    env_file = tmp_path / "dbops.env"
    env_file.write_text("DBOPS_TEST_SECRET=pa$HOME$(id)`id`\nDBOPS_TEST_KEPT=from-file\n")
    monkeypatch.setenv("DBOPS_ENV_FILE", str(env_file))
    monkeypatch.setenv("DBOPS_TEST_KEPT", "from-environment")
    monkeypatch.delenv("DBOPS_TEST_SECRET", raising=False)
    try:
        read_dotenv(tmp_path / "no-such.env")
        assert os.environ["DBOPS_TEST_SECRET"] == "pa$HOME$(id)`id`"
        assert os.environ["DBOPS_TEST_KEPT"] == "from-environment"
    finally:
        os.environ.pop("DBOPS_TEST_SECRET", None)
