"""The h26demo plugin replays what a real eKuiper sent it (tests/fixtures/h26r1.jsonl,
recorded with `ekuiper-plugin record`), with the framing and configuration recorded."""

from pathlib import Path

from ekuiper_sdk.testing import assert_snapshot, frame_bytes, replay

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures" / "h26r1.jsonl"


def test_replay_matches_what_ekuiper_sent():
    result = replay(FIXTURE, HERE.parent)
    assert [o.describe() for o in result.errors] == []
    assert result.changed_calls() == []          # each result as the server got it

    # The sink logged each frame after its prefix: the very bytes eKuiper sent.
    logged = [line.split(": > ", 1)[1] for line in result.output if ": > " in line]
    assert logged == [frame_bytes(e).decode() for e in result.fixture.of_kind("sink")]

    assert_snapshot(result.outputs(), HERE / "snapshots" / "h26r1.json")
