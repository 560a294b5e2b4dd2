"""Competition rules: phases, quotas, leaderboards, final selection (pure, records built here)."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest

from jc_datalad.records import Evaluation, Status
from jc_datalad.spec import (
    ChallengeSpec,
    ChallengeType,
    Direction,
    Interface,
    Metrics,
    Phase,
    Resources,
)
from jc_datalad.standings import (
    Admission,
    Standings,
    admit,
    final_leaderboard,
    leaderboard,
    phase_at,
    select_final,
)

UTC = dt.UTC
DEV = Phase("development", dt.datetime(2027, 1, 1, tzinfo=UTC), dt.datetime(2027, 2, 1, tzinfo=UTC),
            "val", per_day=5, total=100, select=2)
FINAL = Phase("final", dt.datetime(2027, 2, 1, tzinfo=UTC), dt.datetime(2027, 2, 8, tzinfo=UTC),
              "test", per_day=1, total=3, select=1)


def _spec(direction: str = "max", phases: tuple[Phase, ...] = (DEV, FINAL)) -> ChallengeSpec:
    return ChallengeSpec(
        id="bac", title="Bacteria", type=ChallengeType.INFERENCE,
        interface=Interface("inputs/test", "predictions", "label-tiff"), container="jc-env",
        resources=Resources(), metrics=Metrics("seg", "sbd", Direction(direction), ("sbd",)),
        phases=phases,
    )


_n = 0


def _ev(team: str, seen: str, *, public: float | None = 0.5, private: float | None = 0.5,
        status: Status = Status.EVALUATED, phase: str = "development", commit: str | None = None,
        ) -> Evaluation:
    global _n
    _n += 1
    commit = commit or f"{_n:012x}".ljust(40, "0")
    return Evaluation(
        id=f"{team}--{commit[:12]}--{phase}", challenge={"id": "bac"}, team=team,
        submission={"commit": commit, "first_seen": f"{seen}.000000Z"}, phase=phase, split="val",
        status=status, public={"sbd": public, "iou": 0.1}, private={"sbd": private},
    )


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- phases ---------------------------------------------------------------------------------------


def test_phase_at_start_inclusive_end_exclusive():
    spec = _spec()
    assert phase_at(spec, _at("2026-12-31T23:59:59.999999")) is None
    assert phase_at(spec, _at("2027-01-01T00:00:00")) is DEV
    assert phase_at(spec, _at("2027-01-31T23:59:59.999999")) is DEV
    assert phase_at(spec, _at("2027-02-01T00:00:00")) is FINAL
    assert phase_at(spec, _at("2027-02-08T00:00:00")) is None


def test_phase_at_compares_instants_across_timezones():
    spec = _spec()
    plus2 = dt.timezone(dt.timedelta(hours=2))
    # 01:30 at UTC+2 is 23:30 UTC the day before: still development
    assert phase_at(spec, dt.datetime(2027, 2, 1, 1, 30, tzinfo=plus2)) is DEV
    assert phase_at(spec, dt.datetime(2027, 2, 1, 2, 0, tzinfo=plus2)) is FINAL
    # naive times are UTC, as in challenge.yaml
    assert phase_at(spec, dt.datetime(2027, 2, 1)) is FINAL


# -- quotas ---------------------------------------------------------------------------------------


def test_sixth_of_a_day_is_rejected_and_next_utc_day_admitted():
    history = [_ev("alpha", f"2027-01-12T{h:02d}:00:00") for h in (0, 3, 9, 15, 23)]
    assert admit(history[:4], team="alpha", phase=DEV, first_seen=_at("2027-01-12T23:30:00")) \
        == Admission(True, None)
    sixth = admit(history, team="alpha", phase=DEV, first_seen=_at("2027-01-12T23:59:59"))
    assert sixth == Admission(False, "quota: team alpha already has 5 admitted submissions on "
                                     "2027-01-12 (UTC) in phase development (limit 5 per day)")
    assert admit(history, team="alpha", phase=DEV, first_seen=_at("2027-01-13T00:00:00")).admitted


def test_the_day_is_the_utc_day():
    history = [_ev("alpha", "2027-01-12T23:00:00")]
    one = Phase("development", DEV.start, DEV.end, "val", per_day=1)
    plus2 = dt.timezone(dt.timedelta(hours=2))
    # 00:30 on the 13th at UTC+2 is still the 12th in UTC
    refused = admit(history, team="alpha", phase=one,
                    first_seen=dt.datetime(2027, 1, 13, 0, 30, tzinfo=plus2))
    assert refused.reason == ("quota: team alpha already has 1 admitted submission on 2027-01-12 "
                              "(UTC) in phase development (limit 1 per day)")
    assert admit(history, team="alpha", phase=one,
                 first_seen=dt.datetime(2027, 1, 13, 2, 0, tzinfo=plus2)).admitted


def test_total_quota():
    days = [f"2027-01-{d:02d}T12:00:00" for d in range(2, 5)]
    history = [_ev("alpha", seen, phase="final") for seen in days]
    result = admit(history, team="alpha", phase=FINAL, first_seen=_at("2027-02-05T12:00:00"))
    assert result == Admission(False, "quota: team alpha already has 3 admitted submissions in "
                                      "phase final (limit 3 in total)")
    assert admit(history[:2], team="alpha", phase=FINAL, first_seen=_at("2027-02-05T12:00:00")).admitted


def test_count_failed_on_and_off():
    history = [_ev("alpha", "2027-01-12T01:00:00", status=s)
               for s in (Status.EVALUATED, Status.FAILED, Status.REFUSED, Status.ERROR, Status.EVALUATED)]
    when = _at("2027-01-12T20:00:00")
    assert not admit(history, team="alpha", phase=DEV, first_seen=when).admitted
    assert admit(history, team="alpha", phase=DEV, first_seen=when, count_failed=False).admitted
    history += [_ev("alpha", "2027-01-12T02:00:00") for _ in range(3)]
    refused = admit(history, team="alpha", phase=DEV, first_seen=when, count_failed=False)
    assert refused.reason is not None and "already has 5 admitted submissions" in refused.reason


def test_rejected_records_never_count():
    history = [_ev("alpha", "2027-01-12T01:00:00", status=Status.REJECTED) for _ in range(20)]
    when = _at("2027-01-12T20:00:00")
    assert admit(history, team="alpha", phase=DEV, first_seen=when).admitted
    assert admit(history, team="alpha", phase=DEV, first_seen=when, count_failed=False).admitted


def test_platform_faults_never_count():
    """An evaluation the platform failed (infrastructure) is not the team's: no quota spent."""
    history = [_ev("alpha", "2027-01-12T01:00:00", status=Status.INFRASTRUCTURE) for _ in range(20)]
    history += [_ev("alpha", "2027-01-12T01:00:00") for _ in range(4)]
    when = _at("2027-01-12T20:00:00")
    assert admit(history, team="alpha", phase=DEV, first_seen=when).admitted
    assert admit(history, team="alpha", phase=DEV, first_seen=when, count_failed=False).admitted
    history.append(_ev("alpha", "2027-01-12T03:00:00", status=Status.FAILED))
    assert not admit(history, team="alpha", phase=DEV, first_seen=when).admitted


def test_other_phases_and_teams_are_ignored():
    history = ([_ev("beta", "2027-01-12T01:00:00") for _ in range(5)]
               + [_ev("alpha", "2027-01-12T01:00:00", phase="final") for _ in range(5)]
               + [_ev("alpha", "2027-01-12T01:00:00") for _ in range(4)])
    assert admit(history, team="alpha", phase=DEV, first_seen=_at("2027-01-12T20:00:00")).admitted


def test_no_limits_admits_everything():
    open_phase = Phase("open", DEV.start, DEV.end, "val")
    history = [_ev("alpha", "2027-01-12T01:00:00", phase="open") for _ in range(50)]
    assert admit(history, team="alpha", phase=open_phase, first_seen=_at("2027-01-12T02:00:00")).admitted


# -- leaderboards ---------------------------------------------------------------------------------


def _board(standings: Standings) -> list[tuple[int, str, float]]:
    return [(row.rank, row.team, row.score) for row in standings.rows]


def test_leaderboard_max_takes_each_teams_best():
    records = [_ev("alpha", "2027-01-02T00:00:00", public=0.6),
               _ev("alpha", "2027-01-03T00:00:00", public=0.8),
               _ev("beta", "2027-01-02T00:00:00", public=0.7),
               _ev("gamma", "2027-01-02T00:00:00", public=0.9, status=Status.FAILED)]
    board = leaderboard(records, _spec("max"), "development")
    assert _board(board) == [(1, "alpha", 0.8), (2, "beta", 0.7)]
    top = board.rows[0]
    assert top.evaluation_id == records[1].id and top.first_seen == "2027-01-03T00:00:00.000000Z"
    assert top.submissions == 2 and top.previous_rank is None and top.selected == ()
    assert (board.phase, board.part, board.final) == ("development", "public", False)
    assert "highest sbd" in board.rule and "first seen earlier" in board.rule


def test_leaderboard_min_and_private_part():
    records = [_ev("alpha", "2027-01-02T00:00:00", public=0.2, private=0.9),
               _ev("beta", "2027-01-02T00:00:00", public=0.3, private=0.1)]
    assert _board(leaderboard(records, _spec("min"), "development")) == [(1, "alpha", 0.2), (2, "beta", 0.3)]
    private = leaderboard(records, _spec("min"), "development", part="private")
    assert _board(private) == [(1, "beta", 0.1), (2, "alpha", 0.9)]
    assert private.part == "private" and "lowest sbd" in private.rule
    with pytest.raises(ValueError, match="use 'public' or 'private'"):
        leaderboard(records, _spec(), "development", part="hidden")


def test_leaderboard_ties_go_to_earlier_first_seen_then_name():
    records = [_ev("delta", "2027-01-05T00:00:00", public=0.7),
               _ev("carol", "2027-01-04T00:00:00", public=0.7),
               _ev("bravo", "2027-01-04T00:00:00", public=0.7),
               # alpha's later tying submission does not replace its earlier one
               _ev("alpha", "2027-01-06T00:00:00", public=0.7),
               _ev("alpha", "2027-01-03T00:00:00", public=0.7)]
    board = leaderboard(records, _spec(), "development")
    assert [r.team for r in board.rows] == ["alpha", "bravo", "carol", "delta"]
    assert [r.rank for r in board.rows] == [1, 2, 3, 4]
    assert board.rows[0].evaluation_id == records[4].id


def test_leaderboard_exclude_by_id_and_by_team():
    records = [_ev("alpha", "2027-01-02T00:00:00", public=0.9),
               _ev("alpha", "2027-01-03T00:00:00", public=0.5),
               _ev("beta", "2027-01-02T00:00:00", public=0.8),
               _ev("cheat", "2027-01-02T00:00:00", public=1.0)]
    board = leaderboard(records, _spec(), "development", exclude={records[0].id, "cheat"})
    assert _board(board) == [(1, "beta", 0.8), (2, "alpha", 0.5)]
    assert board.rows[1].submissions == 2  # the disqualified record is still a submission
    assert "cheat" in board.rule and records[0].id in board.rule


def test_leaderboard_skips_missing_and_non_finite_scores():
    records = [_ev("alpha", "2027-01-02T00:00:00", public=None),
               _ev("beta", "2027-01-02T00:00:00", public=math.nan),
               _ev("gamma", "2027-01-02T00:00:00", public=math.inf),
               _ev("delta", "2027-01-02T00:00:00", public=0.1),
               _ev("delta", "2027-01-03T00:00:00", public=math.nan)]
    board = leaderboard(records, _spec(), "development")
    assert _board(board) == [(1, "delta", 0.1)]
    assert board.rows[0].submissions == 2


def test_leaderboard_keeps_to_its_phase():
    records = [_ev("alpha", "2027-01-02T00:00:00", public=0.9, phase="final"),
               _ev("beta", "2027-01-02T00:00:00", public=0.1)]
    assert _board(leaderboard(records, _spec(), "development")) == [(1, "beta", 0.1)]
    assert leaderboard(records, _spec(), "none").rows == ()


# -- final selection ------------------------------------------------------------------------------


def test_select_final_without_tags_takes_best_public():
    records = [_ev("alpha", "2027-01-02T00:00:00", public=0.5),
               _ev("alpha", "2027-01-03T00:00:00", public=0.9),
               _ev("alpha", "2027-01-04T00:00:00", public=0.7),
               _ev("alpha", "2027-01-01T00:00:00", public=0.7),  # ties 0.7: earlier wins
               _ev("alpha", "2027-01-05T00:00:00", public=1.0, status=Status.FAILED),
               _ev("beta", "2027-01-05T00:00:00", public=1.0)]
    chosen = select_final(records, _spec(), "development", "alpha")
    assert chosen == (records[1], records[3])  # select=2


def test_select_final_with_tags():
    records = [_ev("alpha", f"2027-01-0{d}T00:00:00", public=p) for d, p in ((2, 0.9), (3, 0.1), (4, 0.2))]
    failed = _ev("alpha", "2027-01-05T00:00:00", status=Status.FAILED)
    commits = [r.submission["commit"] for r in (*records, failed)]
    spec = _spec()
    assert select_final(records, spec, "development", "alpha", tagged={commits[2]}) == (records[2],)
    # more tags than `select` (2): the earliest first seen of them
    assert select_final([*records, failed], spec, "development", "alpha",
                        tagged=set(commits)) == (records[0], records[1])
    # a tag on a commit that was not evaluated selects nothing; no fallback to best public
    assert select_final([*records, failed], spec, "development", "alpha", tagged={commits[3]}) == ()
    with pytest.raises(ValueError, match="no phase 'warmup'"):
        select_final(records, spec, "warmup", "alpha")


def test_final_leaderboard_ranks_private_scores_of_selected():
    spec = _spec()
    records = [
        # alpha led publicly but overfit the public part
        _ev("alpha", "2027-01-02T00:00:00", public=0.95, private=0.60),
        _ev("alpha", "2027-01-03T00:00:00", public=0.90, private=0.62),
        _ev("alpha", "2027-01-04T00:00:00", public=0.10, private=0.99),  # not selected
        _ev("beta", "2027-01-02T00:00:00", public=0.80, private=0.85),
        _ev("gamma", "2027-01-02T00:00:00", public=0.70, private=0.70),
        _ev("gamma", "2027-01-03T00:00:00", public=0.20, private=0.90),  # tagged
        _ev("gamma", "2027-01-04T00:00:00", public=0.50, private=0.10),
    ]
    gamma_tag = {records[5].submission["commit"]}
    final = final_leaderboard(records, spec, "development", tagged={"gamma": gamma_tag})
    assert (final.part, final.final) == ("private", True)
    assert [(r.rank, r.team, r.score, r.previous_rank) for r in final.rows] == [
        (1, "gamma", 0.90, 3), (2, "beta", 0.85, 2), (3, "alpha", 0.62, 1)]
    alpha = final.rows[2]
    assert alpha.selected == (records[0].id, records[1].id)
    assert alpha.evaluation_id == records[1].id and alpha.submissions == 3
    assert final.rows[0].submissions == 3
    assert final.rows[0].selected == (records[5].id,)
    assert "private sbd" in final.rule and "public leaderboard" in final.rule
    assert "team gamma selected with signed final/<label> tags" in final.rule
    untagged = final_leaderboard(records, spec, "development")
    assert "no team tagged submissions" in untagged.rule
    # without the tag gamma's entries are its two best public ones, with private 0.70 at best
    assert [(r.team, r.score) for r in untagged.rows] == [("beta", 0.85), ("gamma", 0.70), ("alpha", 0.62)]


def test_final_leaderboard_tie_rule_and_exclusion():
    spec = _spec("min")
    records = [_ev("bravo", "2027-01-03T00:00:00", public=0.1, private=0.5),
               _ev("alpha", "2027-01-03T00:00:00", public=0.2, private=0.5),
               _ev("carol", "2027-01-02T00:00:00", public=0.3, private=0.5),
               _ev("carol", "2027-01-01T00:00:00", public=0.0, private=0.0)]
    final = final_leaderboard(records, spec, "development", exclude={records[3].id})
    # equal private scores: carol was first seen earliest, then alpha before bravo by name
    assert [(r.rank, r.team, r.previous_rank) for r in final.rows] == [
        (1, "carol", 3), (2, "alpha", 2), (3, "bravo", 1)]
    assert final.rows[0].selected == (records[2].id,)  # the disqualified record is not selectable


def test_as_dict_round_trips_through_json():
    records = [_ev("alpha", "2027-01-02T00:00:00", public=0.9, private=0.3),
               _ev("beta", "2027-01-02T00:00:00", public=0.8, private=0.4)]
    for standings in (leaderboard(records, _spec(), "development"),
                      final_leaderboard(records, _spec(), "development")):
        d = standings.as_dict()
        text = json.dumps(d, sort_keys=True, allow_nan=False)
        assert json.loads(text) == d
        assert Standings.from_dict(json.loads(text)) == standings
    assert d["rows"][0]["selected"] == [records[1].id]


def test_a_bare_string_is_one_name():
    records = [_ev("alpha", "2027-01-02T00:00:00"), _ev("al", "2027-01-02T00:00:00")]
    assert [r.team for r in leaderboard(records, _spec(), "development", exclude="alpha").rows] == ["al"]
    commit = records[0].submission["commit"]
    assert select_final(records, _spec(), "development", "alpha", tagged=commit) == (records[0],)
