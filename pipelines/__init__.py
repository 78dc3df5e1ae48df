"""Shared library of kappa-migration: event model, config, IO and common transforms.

Modules here stay import-light (stdlib, PyYAML, pyarrow) because both Python
environments use them: Beam's `.venv` and PyFlink's `.venv-flink`.
"""
