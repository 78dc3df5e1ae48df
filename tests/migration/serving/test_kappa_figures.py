"""/metrics carries the Kappa stream job's summary beside the serving API's own figures.

The figures are a real Beam job's: the stream's pipeline (`kappa.pipeline.build_kappa`) runs on
the FnApiRunner over a small scenario, its `kappa` counters (Beam metrics) become the summary
`kappa run` reports, written as `kappa run` writes its progress lines and its final summary;
the scrape is parsed by prometheus_client's own parser. The same figures read over Flink's
REST API (`KappaFlinkFigures`) are checked against a live job in tests/kappa/test_portability.py.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kappa.stream import PROGRESS_PREFIX
from migration.serving.metrics import (
    KAPPA_FIGURES,
    KAPPA_PREFIX,
    KappaFigures,
    KappaJobCollector,
    KappaLogFigures,
    Metrics,
)
from tests.kappa.test_portability import stream_on


@pytest.fixture(scope="module")
def beam_summary(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The summary of a real run of the stream's pipeline, from its Beam metrics."""
    summary, _ = stream_on(["--runner=FnApiRunner"], tmp_path_factory.mktemp("wh"), early_firing=False)
    return summary


def scrape(metrics: Metrics) -> dict[str, dict]:
    """{family name: {sample name: (labels, value)}} of one /metrics render."""
    families = {}
    for family in text_string_to_metric_families(metrics.render()):
        families[family.name] = {s.name: (s.labels, s.value) for s in family.samples}
    return families


def write_progress(log: Path, *summaries: dict, final: dict | None = None) -> None:
    """Lines as `kappa run` writes them: progress through logging, then its final summary."""
    handler = logging.FileHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("kappa.stream.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for summary in summaries:
            logger.info("%s%s", PROGRESS_PREFIX, json.dumps(summary))
    finally:
        logger.removeHandler(handler)
        handler.close()
    if final is not None:
        with log.open("a") as f:
            f.write(json.dumps(final) + "\n")


def test_a_running_jobs_newest_progress_line_is_exported(beam_summary: dict, tmp_path: Path) -> None:
    log = tmp_path / "kappa-stream.log"
    earlier = {**beam_summary, "read": 1, "counted": 0}
    write_progress(log, earlier, {**beam_summary, "watermark_age_s": 2.5})
    metrics = Metrics()
    metrics.inc("reads_total", source="kappa_stream", stage="KAPPA_PRIMARY")
    metrics.register(KappaJobCollector(KappaLogFigures(log)))
    families = scrape(metrics)

    assert families[KAPPA_PREFIX + "up"][KAPPA_PREFIX + "up"] == ({}, 1.0)
    for name in KAPPA_FIGURES:
        assert families[KAPPA_PREFIX + name][f"{KAPPA_PREFIX}{name}_total"] == (
            {"source": "log"},
            float(beam_summary[name]),
        ), name
    assert 0 <= families[KAPPA_PREFIX + "figures_age_seconds"][KAPPA_PREFIX + "figures_age_seconds"][1] < 60
    # The API's own figures are still there, beside the job's.
    assert "kappa_serving_reads" in families
    conserved = ("dead_lettered", "too_late", "duplicates_removed", "counted")
    assert beam_summary["read"] == sum(beam_summary[name] for name in conserved) > 0


def test_an_ended_runs_final_summary_wins_over_its_last_progress_line(
    beam_summary: dict, tmp_path: Path
) -> None:
    log = tmp_path / "kappa-stream.log"
    final = {**beam_summary, "seconds": 9.0, "stopped_because": "idle for 5s"}
    write_progress(log, {**beam_summary, "read": 3}, final=final)
    found = KappaLogFigures(log)()
    assert found is not None and found.source == "log"
    assert found.figures == {name: beam_summary[name] for name in KAPPA_FIGURES}


def test_no_job_or_a_broken_source_is_up_0_and_the_scrape_still_answers(tmp_path: Path) -> None:
    def broken() -> KappaFigures | None:
        raise OSError("connection refused")

    for source in (KappaLogFigures(tmp_path / "missing.log"), broken):
        metrics = Metrics()
        metrics.register(KappaJobCollector(source))
        families = scrape(metrics)
        assert families[KAPPA_PREFIX + "up"][KAPPA_PREFIX + "up"] == ({}, 0.0)
        assert not any(name.startswith(KAPPA_PREFIX + "read") for name in families)
    log = tmp_path / "starting.log"
    log.write_text("INFO kappa stream: submitted to the Flink job server in 20.1s\n")
    assert KappaLogFigures(log)() is None
