output "cluster_name" {
  description = "Name of the Dataproc cluster running the legacy speed layer."
  value       = google_dataproc_cluster.speed.name
}

output "service_account_email" {
  description = "Service account of the cluster nodes."
  value       = google_service_account.speed.email
}
