"""The Flink supervisor's pause between restarts (pure); its restarts of a killed TaskManager
are asserted by the drill in tests/reliability/test_fault_flink_cluster.py."""

from __future__ import annotations

from pipelines.stack.flink_supervisor import CALM_S, FIRST_PAUSE_S, MAX_PAUSE_S, main, next_pause


def test_a_daemon_that_keeps_dying_waits_longer_each_time_up_to_a_limit() -> None:
    pauses = [FIRST_PAUSE_S]
    for _ in range(8):
        pauses.append(next_pause(pauses[-1], whole_for_s=1.0))
    assert pauses[:4] == [FIRST_PAUSE_S, 2 * FIRST_PAUSE_S, 4 * FIRST_PAUSE_S, 8 * FIRST_PAUSE_S]
    assert pauses[-1] == MAX_PAUSE_S


def test_after_a_calm_spell_the_pause_starts_over() -> None:
    assert next_pause(MAX_PAUSE_S, whole_for_s=CALM_S) == FIRST_PAUSE_S


def test_without_a_state_dir_it_prints_its_usage_and_exits_3(capsys) -> None:
    assert main([]) == 3
    assert "usage:" in capsys.readouterr().err
