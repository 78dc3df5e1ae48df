locals {
  # Arms that write the aggregate row shape of DESIGN.md 2.3, keyed by table name.
  kappa_aggregate_tables  = toset(["kappa_stream", "kappa_backfill"])
  legacy_aggregate_tables = var.legacy_enabled ? toset(["legacy_batch", "legacy_speed"]) : toset([])

  partition_expiration_ms = var.partition_expiration_days > 0 ? var.partition_expiration_days * 86400000 : null

  datasets = {
    kappa     = "Kappa arm: stream and backfill aggregate rows, current-value views."
    migration = "Migration bookkeeping: dead letters of every arm, validator runs."
    serving   = "What readers query; interaction_counts follows var.serving_source."
  }

  serving_query = {
    legacy = "SELECT * FROM `${var.project_id}.legacy.legacy_serving`"
    kappa  = "SELECT * FROM `${var.project_id}.kappa.kappa_stream_current`"
  }
}

# --- datasets -------------------------------------------------------------------------

resource "google_bigquery_dataset" "this" {
  for_each = local.datasets

  project     = var.project_id
  dataset_id  = each.key
  location    = var.location
  description = each.value
  labels      = var.labels

  dynamic "default_encryption_configuration" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = default_encryption_configuration.value
    }
  }
}

resource "google_bigquery_dataset" "legacy" {
  count = var.legacy_enabled ? 1 : 0

  project     = var.project_id
  dataset_id  = "legacy"
  location    = var.location
  description = "Legacy Lambda arm: batch and speed aggregate rows, batch runs, serving merge."
  labels      = var.labels

  dynamic "default_encryption_configuration" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = default_encryption_configuration.value
    }
  }
}

# --- aggregate tables: partitioned by window_start, clustered by tweet_id --------------

resource "google_bigquery_table" "kappa_aggregate" {
  for_each = local.kappa_aggregate_tables

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.this["kappa"].dataset_id
  table_id            = each.key
  description         = "Append-only ${each.key} pane rows (DESIGN.md 2.3)."
  schema              = file("${path.module}/schemas/aggregate.json")
  clustering          = ["tweet_id"]
  deletion_protection = var.deletion_protection
  labels              = var.labels

  time_partitioning {
    type          = "DAY"
    field         = "window_start"
    expiration_ms = local.partition_expiration_ms
  }

  dynamic "encryption_configuration" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = encryption_configuration.value
    }
  }
}

resource "google_bigquery_table" "legacy_aggregate" {
  for_each = local.legacy_aggregate_tables

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.legacy[0].dataset_id
  table_id            = each.key
  description         = "Append-only ${each.key} pane rows (DESIGN.md 2.3)."
  schema              = file("${path.module}/schemas/aggregate.json")
  clustering          = ["tweet_id"]
  deletion_protection = var.legacy_deletion_protection
  labels              = var.labels

  time_partitioning {
    type          = "DAY"
    field         = "window_start"
    expiration_ms = local.partition_expiration_ms
  }

  dynamic "encryption_configuration" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = encryption_configuration.value
    }
  }
}

# --- bookkeeping tables ---------------------------------------------------------------

resource "google_bigquery_table" "dead_letter" {
  project             = var.project_id
  dataset_id          = google_bigquery_dataset.this["migration"].dataset_id
  table_id            = "dead_letter"
  description         = "Bad records of every arm: raw payload, error, pipeline, time (DESIGN.md 2.1)."
  schema              = file("${path.module}/schemas/dead_letter.json")
  clustering          = ["pipeline"]
  deletion_protection = var.deletion_protection
  labels              = var.labels

  time_partitioning {
    type          = "DAY"
    field         = "failed_at"
    expiration_ms = local.partition_expiration_ms
  }

  dynamic "encryption_configuration" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = encryption_configuration.value
    }
  }
}

resource "google_bigquery_table" "validation_runs" {
  project             = var.project_id
  dataset_id          = google_bigquery_dataset.this["migration"].dataset_id
  table_id            = "validation_runs"
  description         = "One row per dual-run validator run (DESIGN.md 4)."
  schema              = file("${path.module}/schemas/validation_runs.json")
  deletion_protection = var.deletion_protection
  labels              = var.labels

  time_partitioning {
    type  = "DAY"
    field = "started_at"
  }

  dynamic "encryption_configuration" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = encryption_configuration.value
    }
  }
}

resource "google_bigquery_table" "legacy_batch_runs" {
  count = var.legacy_enabled ? 1 : 0

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.legacy[0].dataset_id
  table_id            = "batch_runs"
  description         = "One row per legacy batch run and period; FINISHED runs make the serving view prefer batch values."
  schema              = file("${path.module}/schemas/batch_runs.json")
  deletion_protection = var.legacy_deletion_protection
  labels              = var.labels

  time_partitioning {
    type  = "DAY"
    field = "period_start"
  }

  dynamic "encryption_configuration" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = encryption_configuration.value
    }
  }
}

# --- views ----------------------------------------------------------------------------

resource "google_bigquery_table" "kappa_current" {
  #checkov:skip=CKV_GCP_80:A view stores no data; its base table carries the encryption setting.
  for_each = local.kappa_aggregate_tables

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.this["kappa"].dataset_id
  table_id            = "${each.key}_current"
  description         = "Current value per key of kappa.${each.key} (highest pane_index)."
  deletion_protection = var.deletion_protection
  labels              = var.labels

  view {
    use_legacy_sql = false
    query = templatefile("${path.module}/sql/current_value.sql", {
      project = var.project_id
      dataset = google_bigquery_dataset.this["kappa"].dataset_id
      table   = google_bigquery_table.kappa_aggregate[each.key].table_id
    })
  }
}

resource "google_bigquery_table" "legacy_current" {
  #checkov:skip=CKV_GCP_80:A view stores no data; its base table carries the encryption setting.
  for_each = local.legacy_aggregate_tables

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.legacy[0].dataset_id
  table_id            = "${each.key}_current"
  description         = "Current value per key of legacy.${each.key} (highest pane_index)."
  deletion_protection = var.legacy_deletion_protection
  labels              = var.labels

  view {
    use_legacy_sql = false
    query = templatefile("${path.module}/sql/current_value.sql", {
      project = var.project_id
      dataset = google_bigquery_dataset.legacy[0].dataset_id
      table   = google_bigquery_table.legacy_aggregate[each.key].table_id
    })
  }
}

resource "google_bigquery_table" "legacy_serving" {
  #checkov:skip=CKV_GCP_80:A view stores no data; its base tables carry the encryption setting.
  count = var.legacy_enabled ? 1 : 0

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.legacy[0].dataset_id
  table_id            = "legacy_serving"
  description         = "Lambda serving merge: batch value once the key's period has a finished batch run, else speed value."
  deletion_protection = var.legacy_deletion_protection
  labels              = var.labels

  view {
    use_legacy_sql = false
    # One rule for both sides: the legacy codebase's own BigQuery SQL (also rendered by
    # lambda_legacy.merge and tested against the local DuckDB view).
    query = templatefile("${path.module}/../../../lambda_legacy/sql/legacy_serving.bigquery.sql", {
      project              = var.project_id
      dataset              = google_bigquery_dataset.legacy[0].dataset_id
      batch_runs_table     = google_bigquery_table.legacy_batch_runs[0].table_id
      batch_table          = google_bigquery_table.legacy_aggregate["legacy_batch"].table_id
      speed_table          = google_bigquery_table.legacy_aggregate["legacy_speed"].table_id
      batch_period_seconds = var.batch_period_seconds
    })
  }
}

# The cloud cutover: one variable decides which arm readers see.
resource "google_bigquery_table" "serving_interaction_counts" {
  #checkov:skip=CKV_GCP_80:A view stores no data; its base tables carry the encryption setting.
  project             = var.project_id
  dataset_id          = google_bigquery_dataset.this["serving"].dataset_id
  table_id            = "interaction_counts"
  description         = "Interaction counts served to readers; source: ${var.serving_source}."
  deletion_protection = var.deletion_protection
  labels              = merge(var.labels, { serving_source = var.serving_source })

  view {
    use_legacy_sql = false
    query          = local.serving_query[var.serving_source]
  }

  lifecycle {
    precondition {
      condition     = var.serving_source == "kappa" || var.legacy_enabled
      error_message = "serving_source = \"legacy\" needs legacy_enabled = true; switch serving_source to kappa before decommissioning."
    }
  }

  depends_on = [
    google_bigquery_table.legacy_serving,
    google_bigquery_table.kappa_current,
  ]
}

# Authorised views: readers of the serving dataset need no access to the arms' datasets.
resource "google_bigquery_dataset_access" "serving_on_kappa" {
  project    = var.project_id
  dataset_id = google_bigquery_dataset.this["kappa"].dataset_id

  view {
    project_id = var.project_id
    dataset_id = google_bigquery_dataset.this["serving"].dataset_id
    table_id   = google_bigquery_table.serving_interaction_counts.table_id
  }
}

resource "google_bigquery_dataset_access" "serving_on_legacy" {
  count = var.legacy_enabled ? 1 : 0

  project    = var.project_id
  dataset_id = google_bigquery_dataset.legacy[0].dataset_id

  view {
    project_id = var.project_id
    dataset_id = google_bigquery_dataset.this["serving"].dataset_id
    table_id   = google_bigquery_table.serving_interaction_counts.table_id
  }
}
