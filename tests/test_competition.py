"""Competition rules through the runner: signed submissions, phases, quotas, final selection, overrides.

Real SSH keys, real signed commits and tags; the runner's clock is injected, never slept.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import DATA, Arena, sh

from jc_datalad import participant
from jc_datalad.records import Status
from jc_datalad.teams import add_team

UTC = dt.UTC




def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def contest(challenge, tmp_path_factory):
    """A copy of the session challenge with phases, quotas and signed submissions."""
    from conftest import _reachable

    root = tmp_path_factory.mktemp("contest")
    _reachable(root)
    public = root / "public"
    sh("datalad", "clone", str(challenge.public), str(public))
    spec = yaml.safe_load((public / "challenge.yaml").read_text())
    spec["phases"] = [
        {"name": "development", "start": "2027-01-10", "end": "2027-01-20", "split": "test",
         "per_day": 5, "total": 100, "select": 2},
    ]
    spec["submission"]["signed"] = True
    spec["teams"] = {"merge_deadline": "2027-01-15"}
    (public / "challenge.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    sh("datalad", "save", "-m", "Phases, quotas, signed submissions", cwd=public)
    sh("datalad", "get", ".datalad/environments/jc-env/image", cwd=public)
    return public


@pytest.fixture
def board(contest, challenge, work) -> Arena:
    from conftest import Challenge

    config = work / "runner.yaml"
    teams = work / "teams.yaml"
    teams.write_text("teams: {}\n")
    config.write_text(yaml.safe_dump({
        "challenge": str(contest), "private": str(challenge.private), "results": str(work / "results"),
        "work": str(work / "jc-work"), "teams": str(teams), "workers": 2,
    }))
    return Arena(Challenge(challenge.root, contest, challenge.private, challenge.config), work, config, teams)


def keypair(where: Path, name: str) -> Path:
    key = where / "keys" / name
    key.parent.mkdir(parents=True, exist_ok=True)
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key))
    return key


def signed_team(board: Arena, name: str, key: Path | None = None) -> tuple[Path, Path, Path]:
    """A team registered with its own key; its clone signs every commit with ``key`` (default: its own)."""
    own = keypair(board.root, name)
    repo = participant.make_team_repository(board.root / "teams" / f"{name}.git")
    add_team(board.teams_file, name, str(repo), keys=[str(own) + ".pub"])
    clone = participant.clone_challenge(board.challenge.public, board.root / "participants" / name)
    signer = key or own
    for k, v in (("gpg.format", "ssh"), ("user.signingkey", str(signer)), ("commit.gpgsign", "true"),
                 ("tag.gpgsign", "true")):
        sh("git", "config", k, v, cwd=clone)
    participant.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"})
    return repo, clone, own


def push_variant(clone: Path, repo: Path, branch: str, message: str) -> str:
    sh("git", "commit", "-q", "--allow-empty", "-m", message, cwd=clone)
    return participant.push_submission(clone, repo, branch)


def test_signatures_phases_and_quotas(board):
    alpha_repo, alpha, alpha_key = signed_team(board, "alpha")
    heads = [push_variant(alpha, alpha_repo, f"try-{i}", f"variant {i}") for i in range(6)]
    beta_repo, beta, _ = signed_team(board, "beta")
    sh("git", "config", "commit.gpgsign", "false", cwd=beta)
    unsigned = push_variant(beta, beta_repo, "unsigned", "forgot to sign")
    gamma_repo, gamma, _ = signed_team(board, "gamma", key=alpha_key)
    borrowed = push_variant(gamma, gamma_repo, "borrowed", "signed with alpha's key")

    report = board.run(now=at("2027-01-12T10:00:00"))
    by_commit = {ev.submission["commit"]: ev for ev in report.evaluations}
    alpha_evs = [by_commit[h] for h in heads]
    rejected = [ev for ev in alpha_evs if ev.status is Status.REJECTED]
    assert len(rejected) == 1
    assert rejected[0].reason == ("quota: team alpha already has 5 admitted submissions on 2027-01-12 (UTC) "
                                  "in phase development (limit 5 per day)")
    assert all(ev.status is Status.EVALUATED for ev in alpha_evs if ev is not rejected[0])
    assert by_commit[unsigned].status is Status.REJECTED
    assert by_commit[unsigned].reason.startswith(f"the head commit {unsigned[:12]} is not signed")
    assert by_commit[borrowed].status is Status.REJECTED
    assert by_commit[borrowed].reason == f"the head commit {borrowed[:12]} is signed by a key of team alpha, " \
                                         "not of team gamma"
    first_seen = {ev.submission["commit"]: ev.submission["first_seen"] for ev in report.evaluations}
    assert set(first_seen.values()) == {"2027-01-12T10:00:00.000000Z"}

    # the next UTC day, alpha's next head is admitted again
    nxt = push_variant(alpha, alpha_repo, "try-7", "next day")
    report = board.run(now=at("2027-01-13T09:00:00"))
    (ev,) = report.evaluations
    assert ev.submission["commit"] == nxt and ev.status is Status.EVALUATED
    # first-seen times are written once and never rewritten
    seen = (board.config.results / "submissions" / "seen.jsonl").read_text().splitlines()
    assert len(seen) == len(set(seen)) == 9  # six of alpha, beta, gamma, the next day's
    assert json.loads(seen[0])["first_seen"] == "2027-01-12T10:00:00.000000Z"

    # after the phase: rejected, with the reason
    late = push_variant(alpha, alpha_repo, "late", "too late")
    report = board.run(now=at("2027-01-21T00:00:00"))
    late_ev = next(ev for ev in report.evaluations if ev.submission["commit"] == late)
    assert late_ev.status is Status.REJECTED
    assert "when no phase of the challenge was open" in late_ev.reason

    # the phase ended: the final leaderboard is written, with private scores
    final = json.loads((board.config.results / "standings" / "development-final.json").read_text())
    assert final["final"] is True and final["part"] == "private"
    assert [row["team"] for row in final["rows"]] == ["alpha"]
    best = max((ev for ev in alpha_evs + [ev] if ev.status is Status.EVALUATED),
               key=lambda e: e.public["sbd"])
    assert final["rows"][0]["score"] == pytest.approx(
        max(e.private["sbd"] for e in alpha_evs + [ev] if e.status is Status.EVALUATED
            and e.id in final["rows"][0]["selected"]))
    assert best.id in final["rows"][0]["selected"] or len(final["rows"][0]["selected"]) == 2
    assert "first seen" in final["rule"]


def test_private_scores_stay_out_of_sight_until_the_phase_ends(board):
    from site_generator import build_site

    repo, clone, _ = signed_team(board, "delta")
    participant.push_submission(clone, repo, "s1")
    (ev,) = board.run(now=at("2027-01-12T10:00:00")).evaluations
    assert ev.status is Status.EVALUATED and ev.private
    assert not (board.config.results / "standings").exists()
    site = board.root / "site"
    build_site(board.config.results, site)
    # continuous metrics: their private values cannot appear on a page by coincidence
    continuous = ("sbd", "fg_dice", "ap", "mean_iou_50", "pq_50")
    private_values = {f"{ev.private[k]:.4f}" for k in continuous} - {f"{ev.public[k]:.4f}" for k in continuous}
    pages = "".join(p.read_text() for p in site.rglob("*.html"))
    # a histogram's bin edges are round numbers around the public score; a private score can equal one
    # (0.1500) by chance, so its rows (low, high, count) are left out of the comparison
    pages = re.sub(r'<tr><td class="num">[0-9.]+</td><td class="num">[0-9.]+</td><td class="num">\d+</td></tr>',
                   "", pages)
    assert private_values and not any(value in pages for value in private_values)
    board.run(now=at("2027-01-20T00:00:00"))
    final = json.loads((board.config.results / "standings" / "development-final.json").read_text())
    assert final["rows"][0]["score"] == pytest.approx(ev.private["sbd"])


def test_final_selection_by_signed_tag(board):
    repo, clone, _ = signed_team(board, "epsilon")
    first = participant.push_submission(clone, repo, "s1")
    second = push_variant(clone, repo, "s2", "another try")
    third = push_variant(clone, repo, "s3", "and another")
    sh("git", "tag", "-s", "final/mine", second, "-m", "my final choice", cwd=clone)
    sh("git", "push", "-q", "team", "final/mine", cwd=clone)
    board.run(now=at("2027-01-12T10:00:00"))
    board.run(now=at("2027-01-21T00:00:00"))
    final = json.loads((board.config.results / "standings" / "development-final.json").read_text())
    (row,) = final["rows"]
    assert [i.split("--")[1] for i in row["selected"]] == [second[:12]]
    assert first != third


def test_overrides_are_recorded_with_reasons(board):
    from click.testing import CliRunner

    from jc_datalad.cli import main

    repo, clone, _ = signed_team(board, "zeta")
    participant.push_submission(clone, repo, "s1")
    (ev,) = board.run(now=at("2027-01-12T10:00:00")).evaluations
    cfg = str(board.config_path)
    result = CliRunner().invoke(main, ["runner", "override", "disqualify", ev.id, "--reason",
                                       "used the test labels", "--config", cfg])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["runner", "override", "extend", "development", "--end", "2027-01-25",
                                       "--reason", "server outage", "--config", cfg])
    assert result.exit_code == 0, result.output
    log = sh("git", "log", "--format=%s", cwd=board.config.results)
    assert f"Organizer override: disqualify {ev.id}: used the test labels" in log
    assert "Organizer override: extend development: server outage" in log
    # the extension keeps the phase open on the 21st; the disqualified entry is off the final board
    late = push_variant(clone, repo, "s2", "after the original end")
    (late_ev,) = board.run(now=at("2027-01-21T00:00:00")).evaluations
    assert late_ev.submission["commit"] == late and late_ev.status is Status.EVALUATED
    board.run(now=at("2027-01-26T00:00:00"))
    final = json.loads((board.config.results / "standings" / "development-final.json").read_text())
    assert all(ev.id not in row["selected"] for row in final["rows"])


def test_team_merge_before_and_after_the_deadline(board):
    from jc_datalad.errors import JcError
    from jc_datalad.teams import merge_teams

    for name in ("eta", "theta", "iota"):
        repo = participant.make_team_repository(board.root / "teams" / f"{name}.git")
        add_team(board.teams_file, name, str(repo), keys=[str(keypair(board.root, name)) + ".pub"])
    merge_teams(board.teams_file, "eta", "theta", deadline=at("2027-01-15T00:00:00"), now=at("2027-01-14T00:00:00"))
    from jc_datalad.config import load_teams
    from jc_datalad.teams import effective_team, keys_by_team

    teams = load_teams(board.teams_file)
    assert effective_team(teams, "theta") == "eta" and len(keys_by_team(teams)["eta"]) == 2
    with pytest.raises(JcError, match="merge deadline"):
        merge_teams(board.teams_file, "eta", "iota", deadline=at("2027-01-15T00:00:00"),
                    now=at("2027-01-16T00:00:00"))
    shutil.rmtree(board.root / "keys")


def test_submit_check_wants_a_signature(board):
    from jc_datalad.submit import check_submission

    _, clone, _ = signed_team(board, "kappa")
    assert check_submission(clone).ok
    sh("git", "commit", "-q", "--no-gpg-sign", "--allow-empty", "-m", "unsigned", cwd=clone)
    result = check_submission(clone)
    assert not result.ok and "is not signed" in result.problems[0]


def test_a_flood_of_unsigned_heads_costs_one_commit_then_nothing(board, monkeypatch):
    from jc_datalad import admission
    from jc_datalad.teams import add_team

    clones = []
    real_clone = admission.bare_clone

    def counting_clone(config, repository):
        clones.append(repository)
        return real_clone(config, repository)

    monkeypatch.setattr(admission, "bare_clone", counting_clone)
    repo, clone, own = signed_team(board, "flood")
    sh("git", "config", "commit.gpgsign", "false", cwd=clone)
    branches = []
    for i in range(30):
        sh("git", "commit", "-q", "--allow-empty", "-m", f"unsigned {i}", cwd=clone)
        sh("git", "branch", "-q", f"flood-{i}", cwd=clone)
        branches.append(f"flood-{i}")
    sh("git", "remote", "add", "team", str(repo), cwd=clone)
    sh("git", "push", "-q", "team", *branches, cwd=clone)
    results = board.config.results

    def head() -> str:
        return sh("git", "rev-parse", "HEAD", cwd=results).strip()

    report = board.run(now=at("2027-01-12T10:00:00"))
    assert len(report.evaluations) == 30
    assert all(ev.status is Status.REJECTED and "is not signed" in ev.reason for ev in report.evaluations)
    subjects = sh("git", "log", "--format=%s", cwd=results).splitlines()
    assert subjects.count("Rejected 30 submission head(s)") == 1
    assert not [s for s in subjects if s.startswith("[DATALAD RUNCMD]")]  # no commit per rejection
    assert clones == [str(repo)]  # one bare clone for the team's 30 heads

    # the next pass: the rejected heads are remembered; no clone, no commit
    clones.clear()
    before = head()
    report = board.run(now=at("2027-01-12T11:00:00"))
    assert report.evaluations == [] and report.already_done == 30
    assert clones == [] and head() == before

    # the team registers another key: what decided the rejections changed, so they are decided again
    add_team(board.teams_file, "flood", str(repo), keys=[str(own) + ".pub", str(keypair(board.root, "spare")) + ".pub"])
    report = board.run(now=at("2027-01-12T12:00:00"))
    assert len(report.evaluations) == 30 and all(ev.status is Status.REJECTED for ev in report.evaluations)
    assert clones == [str(repo)]
    assert sh("git", "log", "--format=%s", cwd=results).splitlines().count("Rejected 30 submission head(s)") == 2
