"""`qmon check-config` (and the logs that use the same masking) must not print secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import mask_url


def test_check_config_masks_the_webhook_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Slack/Teams/ntfy webhook URLs carry their credential in the path; results.py itself refuses to log it.
    cfg = tmp_path / "q.toml"
    cfg.write_text('[survey]\nwebhook_url = "https://hooks.example.com/services/T000/B000/S3CR3TTOKEN"\n')
    assert main(["check-config", "--config", str(cfg)], {"QMON_AMI_SECRET": "x"}) == 0
    assert "S3CR3TTOKEN" not in capsys.readouterr().out


def test_a_password_in_the_url_query_is_masked() -> None:
    # asyncpg takes ?password=...; mask_url only knows user:password@, so check-config, the "database
    # unavailable" log line and the config-file guard ("holds a password") all let it through.
    assert "hunter2" not in mask_url("postgresql+asyncpg://qmon@db:5432/qmon?password=hunter2")
