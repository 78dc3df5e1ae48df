import subprocess

import pytest

from pipelines.stack.processes import KAPPACTL


def run(*args, **kwargs):
    return subprocess.run([*KAPPACTL, *args], capture_output=True, text=True, timeout=120, **kwargs)


def test_help_lists_every_command():
    out = run("--help")
    assert out.returncode == 0
    for name in (
        "up",
        "down",
        "status",
        "generate",
        "bridge",
        "archive",
        "legacy",
        "kappa",
        "validate",
        "cutover",
        "serve",
        "demo",
        "bench",
    ):
        assert name in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "--events", "zero"], "'zero' is not a valid integer"),
        (["generate", "--bogus"], "No such option"),
        (["generate"], "give exactly one of --events N or --duration S"),
        (["generate", "--events", "5", "--dup-rate", "1.5"], "--dup-rate must be between 0 and 1"),
        (["generate", "--events", "5", "--config", "missing.yaml"], "config file not found: missing.yaml"),
        (["generate", "--events", "5", "--set", "time.window_size=7s"], "multiple of time.window_size"),
        (["generate", "--events", "5", "--set", "kafka.nope=1"], "unknown key 'kafka.nope'"),
        (["generate", "--events", "5", "--to", "s3://x"], "--to 's3://x': use kafka or file:PATH"),
        (["generate", "--events", "5", "--start-time", "yesterday"], "not an ISO 8601 time"),
        (["kappa", "run", "--flush", "0"], "Invalid value for '--flush': 0.0 is not in the range x>0"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_3(args, message):
    out = run(*args)
    assert out.returncode == 3
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kappactl: error:")
    assert message in lines[0]


def test_generate_to_file_is_deterministic(tmp_path):
    args = [
        "generate",
        "--events",
        "500",
        "--seed",
        "3",
        "--start-time",
        "2025-11-24T16:00:00Z",
        "--no-ledger",
    ]
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert run(*args, "--to", f"file:{a}").returncode == 0
    assert run(*args, "--to", f"file:{b}").returncode == 0
    assert a.read_bytes() == b.read_bytes() and len(a.read_bytes().splitlines()) == 500
