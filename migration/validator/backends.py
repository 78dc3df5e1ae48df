"""The BigQuery engine under its earlier name: opened for validation inputs (`build_inputs`)."""

from migration.validator.engines.bigquery import BigQueryEngine, bigquery_connection, is_not_found
from migration.validator.spec.flags import ValidationInputs


class BigQueryBackend(BigQueryEngine):
    def __init__(self, inputs: ValidationInputs):
        options = inputs.options
        super().__init__(options.bigquery_project or "", options.bigquery_dataset, inputs.config.time)
        self.inputs = inputs


__all__ = ["BigQueryBackend", "bigquery_connection", "is_not_found"]
