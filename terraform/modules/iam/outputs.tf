output "kappa_worker_email" {
  description = "Service account the kappa stream and backfill Dataflow workers run as."
  value       = google_service_account.kappa_worker.email
}

output "legacy_batch_worker_email" {
  description = "Service account the legacy batch Dataflow workers run as; null when legacy_enabled = false."
  value       = try(google_service_account.legacy_batch_worker[0].email, null)
}

output "legacy_batch_launcher_email" {
  description = "Service account Cloud Scheduler uses to launch the legacy batch; null when legacy_enabled = false."
  value       = try(google_service_account.legacy_batch_launcher[0].email, null)
}
