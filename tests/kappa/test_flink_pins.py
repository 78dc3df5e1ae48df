"""The two Beam versions of the Kappa arm on Flink move together or not at all.

Python's apache-beam builds and submits the pipeline and Beam's Flink runner (job server)
runs it; tools/kappa-flink/pom.xml says why each is the version it is. These tests read the
pins where they are written and what is installed, and fail when one of them moves alone.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
POM = ROOT / "tools" / "kappa-flink" / "pom.xml"
JARS = ROOT / ".local" / "jars-kappa"
# The combination that ran the Kappa stream on the Flink runner (tests/kappa/test_stream_flink.py).
KNOWN_TOGETHER = {"beam.python.version": "2.77.0", "beam.flink.runner.version": "2.62.0",
                  "flink.version": "1.19"}  # fmt: skip


def pom_properties() -> dict[str, str]:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    properties = ET.parse(POM).getroot().find("m:properties", ns)
    assert properties is not None, f"{POM} has no <properties>"
    return {child.tag.split("}", 1)[1]: (child.text or "").strip() for child in properties}


def locked_beam() -> str:
    for line in (ROOT / "requirements" / "main.lock").read_text().splitlines():
        if line.startswith("apache-beam=="):
            return line.split("==", 1)[1].split()[0]
    raise AssertionError("requirements/main.lock pins no apache-beam")


def test_the_pom_pins_the_combination_known_to_work_together() -> None:
    pins = pom_properties()
    moved = {k: (pins.get(k), v) for k, v in KNOWN_TOGETHER.items() if pins.get(k) != v}
    assert not moved, (
        f"tools/kappa-flink/pom.xml moved {moved} (pom, known together): run "
        "tests/kappa/test_stream_flink.py with the new set, then update KNOWN_TOGETHER"
    )


def test_the_python_sdk_locked_and_installed_is_the_one_the_pom_names() -> None:
    pinned = pom_properties()["beam.python.version"]
    assert locked_beam() == pinned, (
        f"requirements/main.lock has apache-beam {locked_beam()}, tools/kappa-flink/pom.xml {pinned}: "
        "a new Python SDK needs tests/kappa/test_stream_flink.py run on the pinned runner first"
    )
    assert version("apache-beam") == pinned, f"installed apache-beam {version('apache-beam')} is not {pinned}"


@pytest.mark.parametrize(
    ("folder", "jar", "pin"),
    [
        ("cluster", "beam-runners-flink-{flink}-{v}.jar", "beam.flink.runner.version"),
        ("cluster", "flink-runtime-{flink}.0.jar", "flink.version"),
    ],
)
def test_the_fetched_jars_are_the_pinned_versions(folder: str, jar: str, pin: str) -> None:
    pins = pom_properties()
    name = jar.format(flink=pins["flink.version"], v=pins[pin])
    assert (JARS / folder / name).is_file(), f"{JARS / folder / name} missing: run `make setup`"
    # Exactly one Beam runner/SDK core per classpath: two would mean a version resolved twice.
    cores = sorted(p.name for p in (JARS / folder).glob("beam-sdks-java-core-*.jar"))
    assert len(cores) == 1, cores
