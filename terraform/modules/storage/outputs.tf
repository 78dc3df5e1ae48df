output "archive_bucket" {
  description = "Name of the archive bucket."
  value       = google_storage_bucket.archive.name
}

output "archive_bucket_url" {
  description = "gs:// URL of the archive bucket."
  value       = google_storage_bucket.archive.url
}

output "templates_bucket" {
  description = "Name of the flex-template bucket (read by the launchers, written by the deployer only)."
  value       = google_storage_bucket.templates.name
}

output "templates_prefix" {
  description = "gs:// prefix under which flex-template spec files are stored."
  value       = "${google_storage_bucket.templates.url}/templates"
}

output "work_buckets" {
  description = "Name of each worker account's own temp/staging bucket, by worker (keys of var.work_buckets)."
  value       = { for worker, bucket in google_storage_bucket.work : worker => bucket.name }
}

output "temp_locations" {
  description = "Dataflow temp_location of each worker (gs://<its bucket>/temp)."
  value       = { for worker, bucket in google_storage_bucket.work : worker => "${bucket.url}/temp" }
}

output "staging_locations" {
  description = "Dataflow staging_location of each worker (gs://<its bucket>/staging)."
  value       = { for worker, bucket in google_storage_bucket.work : worker => "${bucket.url}/staging" }
}
