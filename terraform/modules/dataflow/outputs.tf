output "kappa_stream_job_id" {
  description = "Dataflow job id of the running kappa stream."
  value       = google_dataflow_flex_template_job.kappa_stream.job_id
}

output "kappa_stream_job_name" {
  description = "Dataflow job name of the kappa stream."
  value       = google_dataflow_flex_template_job.kappa_stream.name
}

output "legacy_batch_scheduler_job" {
  description = "Cloud Scheduler job that launches the legacy batch; null when legacy_enabled = false."
  value       = try(google_cloud_scheduler_job.legacy_batch[0].id, null)
}
