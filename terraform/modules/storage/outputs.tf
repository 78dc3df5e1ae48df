output "archive_bucket" {
  description = "Name of the archive bucket."
  value       = google_storage_bucket.archive.name
}

output "archive_bucket_url" {
  description = "gs:// URL of the archive bucket."
  value       = google_storage_bucket.archive.url
}

output "dataflow_bucket" {
  description = "Name of the Dataflow temp/staging/templates bucket."
  value       = google_storage_bucket.dataflow.name
}

output "temp_location" {
  description = "Dataflow temp_location (gs://.../temp)."
  value       = "${google_storage_bucket.dataflow.url}/temp"
}

output "staging_location" {
  description = "Dataflow staging_location (gs://.../staging)."
  value       = "${google_storage_bucket.dataflow.url}/staging"
}

output "templates_prefix" {
  description = "gs:// prefix under which flex-template spec files are stored."
  value       = "${google_storage_bucket.dataflow.url}/templates"
}
