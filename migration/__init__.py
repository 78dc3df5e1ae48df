"""Migration: dual-run validator, cutover controller, serving API, demo orchestration, CLI."""
