"""Issue 9, bad input to the commands themselves: bad config files, bad `--set` overrides,
bad arguments and bad policy files across every command. Each must fail before doing
anything, with exactly one line on stderr (`kappactl: error: ...`) and exit code 3.

The cases run as real `kappactl` subprocesses, four at a time; every failure is reported."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipelines.stack.processes import KAPPACTL
from tests.reliability.support import ROOT, record_summary

pytestmark = pytest.mark.timeout(300)


def files(tmp: Path) -> dict[str, str]:
    contents = {
        "bad_yaml": "time: [window_size: 10s\n",
        "not_mapping": "- just\n- a list\n",
        "unknown_key": "bogus_section:\n  x: 1\n",
        "bad_duration": "time:\n  window_size: ten seconds\n",
        "bad_port": "kafka:\n  bootstrap: localhost:99999999\n",
        "policy_bad_rate": "max_unexplained_key_rate: 2.5\n",
        "policy_unknown": "max_unexplained_key_rate: 0.01\nfavourite_colour: blue\n",
        "policy_bad_yaml": "consecutive_passes: [3\n",
        "policy_negative": "consecutive_passes: -1\n",
        "binary": "\x00\x01\x02 not yaml \xff",
    }
    out = {}
    for name, text in contents.items():
        path = tmp / f"{name}.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        out[name] = str(path)
    (tmp / "empty-archive").mkdir()
    out["empty_archive"] = str(tmp / "empty-archive")
    return out


def cases(f: dict[str, str]) -> list[tuple[str, list[str], str]]:
    """(name, argv, a fragment of the one error line)."""
    day = "2026-01-05T00:00:00Z"
    return [
        ("generate bad yaml", ["generate", "--events", "5", "--config", f["bad_yaml"]], "not valid YAML"),
        ("generate binary config", ["generate", "--events", "5", "--config", f["binary"]], "not valid YAML"),
        ("generate negative rate", ["generate", "--duration", "1", "--rate", "-1"], "--rate"),
        ("bridge unknown key", ["bridge", "--config", f["unknown_key"]], "bogus_section"),
        ("bridge zero idle", ["bridge", "--exit-when-idle", "0"], "--exit-when-idle"),
        ("bridge bad port", ["bridge", "--config", f["bad_port"]], "kafka.bootstrap"),
        ("archive bad duration", ["archive", "--config", f["bad_duration"]], "time.window_size"),
        ("archive idle not a number", ["archive", "--exit-when-idle", "soon"], "--exit-when-idle"),
        ("archive bad --set", ["archive", "--set", "nonsense"], "SECTION.KEY=VALUE"),
        ("legacy batch no period", ["legacy", "batch", "--archive", f["empty_archive"]], "--period-start"),
        (
            "legacy batch bad time",
            ["legacy", "batch", "--archive", f["empty_archive"], "--period-start", "yesterday"],
            "ISO 8601",
        ),  # fmt: skip
        (
            "legacy batch off boundary",
            ["legacy", "batch", "--archive", f["empty_archive"], "--period-start", "2026-01-05T00:00:30Z"],
            "boundary",
        ),  # fmt: skip
        (
            "legacy batch missing archive",
            ["legacy", "batch", "--archive", "/nonexistent/archive", "--period-start", day],
            "archive not found",
        ),  # fmt: skip
        (
            "legacy batch zero periods",
            ["legacy", "batch", "--period-start", day, "--periods", "0"],
            "--periods",
        ),
        ("legacy speed zero parallelism", ["legacy", "speed", "--parallelism", "0"], "--parallelism"),
        ("legacy speed not a mapping", ["legacy", "speed", "--config", f["not_mapping"]], "mapping"),
        (
            "legacy speed bad flink master",
            ["legacy", "speed", "--flink-master", "nonsense"],
            "--flink-master",
        ),
        ("kappa run bad replay", ["kappa", "run", "--replay-from", "last tuesday"], "--replay-from"),
        ("kappa run bad runtime", ["kappa", "run", "--max-runtime", "forever"], "--max-runtime"),
        (
            "kappa run negative lateness",
            ["kappa", "run", "--set", "time.kappa_allowed_lateness=-5s"],
            "kappa_allowed_lateness",
        ),  # fmt: skip
        (
            "kappa backfill reversed range",
            ["kappa", "backfill", "--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"],
            "--to must be after --from",
        ),  # fmt: skip
        (
            "kappa backfill empty archive",
            ["kappa", "backfill", "--archive", f["empty_archive"]],
            "no archive parts",
        ),
        ("kappa backfill zero buckets", ["kappa", "backfill", "--buckets", "0"], "--buckets"),
        ("kappa graph unknown mode", ["kappa", "graph", "--mode", "lambda"], "--mode"),
        (
            "validate missing policy",
            ["validate", "--policy", "/nonexistent/policy.yaml"],
            "policy file not found",
        ),
        ("validate bad rate", ["validate", "--policy", f["policy_bad_rate"]], "max_unexplained_key_rate"),
        ("validate unknown policy key", ["validate", "--policy", f["policy_unknown"]], "favourite_colour"),
        ("validate policy bad yaml", ["validate", "--policy", f["policy_bad_yaml"]], "YAML"),
        ("validate bad since", ["validate", "--since", "the dawn of time"], "--since: not an ISO 8601 time"),
        (
            "validate reversed range",
            ["validate", "--since", "2026-01-02T00:00:00Z", "--until", "2026-01-01T00:00:00Z"],
            "--since must be before --until",
        ),  # fmt: skip
        ("validate missing left path", ["validate", "--left-path", "/nonexistent/*.parquet"], "left"),
        ("cutover advance no reason", ["cutover", "advance"], "--reason"),
        ("cutover advance bad stage", ["cutover", "advance", "--to", "NOWHERE", "--reason", "x"], "NOWHERE"),
        (
            "cutover status bad policy",
            ["cutover", "status", "--policy", f["policy_negative"]],
            "consecutive_passes",
        ),
        ("cutover history bad config", ["cutover", "history", "--config", f["bad_yaml"]], "not valid YAML"),
        ("serve bad port", ["serve", "--port", "70000"], "--port"),
        ("serve bad refresh", ["serve", "--refresh", "banana"], "--refresh"),
        ("serve bad settle", ["serve", "--settle", "-5s"], "--settle"),
        ("serve unknown key", ["serve", "--set", "serving.threads=4"], "unknown key 'serving'"),
        ("unknown command", ["frobnicate"], "frobnicate"),
    ]


def run_case(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*KAPPACTL, *argv], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_every_command_rejects_bad_input_with_one_line_and_exit_3(tmp_path, request):
    table = cases(files(tmp_path))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda case: run_case(case[1], ROOT), table))
    failures = []
    for (name, argv, fragment), out in zip(table, results, strict=True):
        lines = out.stderr.strip().splitlines()
        ok = (
            out.returncode == 3
            and len(lines) == 1
            and lines[0].startswith("kappactl: error:")
            and fragment in lines[0]
        )
        if not ok:
            failures.append(f"{name}: {argv} -> exit {out.returncode}, stderr {out.stderr.strip()[-600:]!r}")
    record_summary(request, tmp_path, "bad_commands", {"cases": len(table), "failures": failures})
    assert not failures, "\n".join(failures)
