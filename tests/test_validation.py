"""One validation layer for the organizer's input files: challenge.yaml, runner.yaml, teams.yaml."""

from __future__ import annotations

from pathlib import Path

from jc_datalad.config import load_config


def _runner_yaml(folder: Path, extra: str = "") -> Path:
    path = folder / "runner.yaml"
    path.write_text("challenge: c\nprivate: p\nresults: r\n" + extra)
    return path


def test_runner_logs_folder_defaults_beside_runner_yaml(tmp_path):
    config = load_config(_runner_yaml(tmp_path))
    assert config.logs == (tmp_path / "private-logs").resolve()
    config = load_config(_runner_yaml(tmp_path, "logs: ../elsewhere/logs\n"))
    assert config.logs == (tmp_path.parent / "elsewhere" / "logs").resolve()
