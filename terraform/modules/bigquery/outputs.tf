output "dataset_ids" {
  description = "Dataset ids by role (kappa, migration, serving and, while legacy_enabled, legacy)."
  value = merge(
    { for k, d in google_bigquery_dataset.this : k => d.dataset_id },
    var.legacy_enabled ? { legacy = google_bigquery_dataset.legacy[0].dataset_id } : {},
  )
}

output "aggregate_table_ids" {
  description = "project.dataset.table of every aggregate table, keyed by pipeline name."
  value = merge(
    { for k, t in google_bigquery_table.kappa_aggregate : k => "${t.project}.${t.dataset_id}.${t.table_id}" },
    { for k, t in google_bigquery_table.legacy_aggregate : k => "${t.project}.${t.dataset_id}.${t.table_id}" },
  )
}

output "current_view_ids" {
  description = "project.dataset.view of every current-value view, keyed by pipeline name."
  value = merge(
    { for k, t in google_bigquery_table.kappa_current : k => "${t.project}.${t.dataset_id}.${t.table_id}" },
    { for k, t in google_bigquery_table.legacy_current : k => "${t.project}.${t.dataset_id}.${t.table_id}" },
  )
}

output "dead_letter_table_id" {
  description = "project.dataset.table of the dead-letter table."
  value       = "${google_bigquery_table.dead_letter.project}.${google_bigquery_table.dead_letter.dataset_id}.${google_bigquery_table.dead_letter.table_id}"
}

output "dead_letter_table" {
  description = "Dataset and table id of the dead-letter table, for table-level IAM."
  value = {
    dataset_id = google_bigquery_table.dead_letter.dataset_id
    table_id   = google_bigquery_table.dead_letter.table_id
  }
}

output "validation_runs_table_id" {
  description = "project.dataset.table of the validator runs table."
  value       = "${google_bigquery_table.validation_runs.project}.${google_bigquery_table.validation_runs.dataset_id}.${google_bigquery_table.validation_runs.table_id}"
}

output "batch_runs_table_id" {
  description = "project.dataset.table of legacy.batch_runs, null when legacy_enabled = false."
  value       = var.legacy_enabled ? "${var.project_id}.${google_bigquery_dataset.legacy[0].dataset_id}.${google_bigquery_table.legacy_batch_runs[0].table_id}" : null
}

output "legacy_serving_view_id" {
  description = "project.dataset.view of the legacy serving merge, null when legacy_enabled = false."
  value       = var.legacy_enabled ? "${var.project_id}.${google_bigquery_dataset.legacy[0].dataset_id}.${google_bigquery_table.legacy_serving[0].table_id}" : null
}

output "serving_view_id" {
  description = "project.dataset.view readers query (serving.interaction_counts)."
  value       = "${var.project_id}.${google_bigquery_dataset.this["serving"].dataset_id}.${google_bigquery_table.serving_interaction_counts.table_id}"
}

output "serving_source" {
  description = "Arm serving.interaction_counts currently reads (legacy or kappa)."
  value       = var.serving_source
}
