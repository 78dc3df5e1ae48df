output "project_id" {
  description = "Project everything lives in."
  value       = var.project_id
}

output "region" {
  description = "Region of the regional resources."
  value       = var.region
}

output "serving_source" {
  description = "Arm serving.interaction_counts reads now (legacy or kappa)."
  value       = module.bigquery.serving_source
}

output "legacy_enabled" {
  description = "Whether the legacy arm exists."
  value       = var.legacy_enabled
}

output "topic" {
  description = "Interactions topic id (projects/<p>/topics/interactions) the bridge publishes to."
  value       = module.pubsub.topic_id
}

output "dead_letter_topic" {
  description = "Dead-letter topic id of the kappa subscription."
  value       = module.pubsub.dead_letter_topic_id
}

output "dead_letter_subscription" {
  description = "Subscription path that keeps dead-lettered messages for inspection."
  value       = module.pubsub.dead_letter_subscription_id
}

output "kappa_subscription" {
  description = "Subscription path (projects/<p>/subscriptions/kappa) the kappa stream reads."
  value       = module.pubsub.kappa_subscription_id
}

output "legacy_speed_subscription" {
  description = "Subscription path the legacy speed layer reads; null when legacy_enabled = false."
  value       = module.pubsub.legacy_speed_subscription_id
}

output "archive_root" {
  description = "gs:// archive root for `kappactl legacy batch` and `kappactl kappa backfill`."
  value       = module.pubsub.archive_root
}

output "archive_bucket" {
  description = "Name of the archive bucket."
  value       = module.storage.archive_bucket
}

output "templates_bucket" {
  description = "Name of the flex-template bucket (written by the deployer and template_publishers only)."
  value       = module.storage.templates_bucket
}

output "work_buckets" {
  description = "Each worker account's own temp/staging bucket, by worker."
  value       = module.storage.work_buckets
}

output "temp_locations" {
  description = "Dataflow temp_location of each worker (use the kappa one for `kappactl kappa backfill` on Dataflow)."
  value       = module.storage.temp_locations
}

output "staging_locations" {
  description = "Dataflow staging_location of each worker."
  value       = module.storage.staging_locations
}

output "kms_key_name" {
  description = "The Cloud KMS key the data stores are encrypted with; null when cmek_enabled = false."
  value       = local.kms_key_name
}

output "template_paths" {
  description = "gs:// paths where the flex-template specs must be built to (gcloud dataflow flex-template build)."
  value = {
    kappa_stream = coalesce(var.kappa_template_gcs_path, "${module.storage.templates_prefix}/kappa_stream.json")
    legacy_batch = coalesce(var.legacy_batch_template_gcs_path, "${module.storage.templates_prefix}/legacy_batch.json")
  }
}

output "image_prefix" {
  description = "Artifact Registry prefix for flex-template images."
  value       = module.artifact_registry.image_prefix
}

output "dataset_ids" {
  description = "BigQuery dataset ids by role."
  value       = module.bigquery.dataset_ids
}

output "aggregate_table_ids" {
  description = "project.dataset.table of each arm's aggregate table."
  value       = module.bigquery.aggregate_table_ids
}

output "current_view_ids" {
  description = "project.dataset.view of each arm's current-value view."
  value       = module.bigquery.current_view_ids
}

output "dead_letter_table" {
  description = "project.dataset.table of the dead-letter table."
  value       = module.bigquery.dead_letter_table_id
}

output "validation_runs_table" {
  description = "project.dataset.table the validator appends one row per run to."
  value       = module.bigquery.validation_runs_table_id
}

output "batch_runs_table" {
  description = "project.dataset.table of legacy batch runs; null when legacy_enabled = false."
  value       = module.bigquery.batch_runs_table_id
}

output "legacy_serving_view" {
  description = "project.dataset.view of the legacy serving merge; null when legacy_enabled = false."
  value       = module.bigquery.legacy_serving_view_id
}

output "serving_view" {
  description = "project.dataset.view readers query (serving.interaction_counts)."
  value       = module.bigquery.serving_view_id
}

output "service_accounts" {
  description = "Service account emails by role (null for roles that do not exist in this configuration)."
  value = {
    kappa_worker          = module.iam.kappa_worker_email
    legacy_batch_worker   = module.iam.legacy_batch_worker_email
    legacy_batch_launcher = module.iam.legacy_batch_launcher_email
    legacy_speed          = try(module.legacy_speed[0].service_account_email, null)
  }
}

output "kappa_stream_job_id" {
  description = "Dataflow job id of the kappa stream."
  value       = module.dataflow.kappa_stream_job_id
}

output "legacy_batch_scheduler_job" {
  description = "Cloud Scheduler job launching the legacy batch; null when legacy_enabled = false."
  value       = module.dataflow.legacy_batch_scheduler_job
}

output "legacy_speed_cluster" {
  description = "Dataproc cluster running the legacy speed layer; null unless legacy_speed_on_dataproc."
  value       = try(module.legacy_speed[0].cluster_name, null)
}

output "migration_alert_policy_ids" {
  description = "Cloud Monitoring alert policy ids of the migration's rollback conditions, by condition."
  value       = module.monitoring.alert_policy_ids
}
