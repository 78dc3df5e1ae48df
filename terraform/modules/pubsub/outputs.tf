output "topic_id" {
  description = "Full id (projects/<p>/topics/<t>) of the interactions topic; the bridge publishes here."
  value       = google_pubsub_topic.interactions.id
}

output "topic_name" {
  description = "Short name of the interactions topic."
  value       = google_pubsub_topic.interactions.name
}

output "dead_letter_topic_id" {
  description = "Full id of the dead-letter topic."
  value       = google_pubsub_topic.dead_letter.id
}

output "dead_letter_subscription_id" {
  description = "Full id of the subscription that keeps dead letters for inspection."
  value       = google_pubsub_subscription.dead_letter.id
}

output "kappa_subscription_id" {
  description = "Full subscription path (projects/<p>/subscriptions/kappa) read by the kappa stream."
  value       = google_pubsub_subscription.kappa.id
}

output "kappa_subscription_name" {
  description = "Short name of the kappa subscription (for IAM bindings)."
  value       = google_pubsub_subscription.kappa.name
}

output "legacy_speed_subscription_id" {
  description = "Full path of the legacy speed subscription, null when legacy_enabled = false."
  value       = try(google_pubsub_subscription.legacy_speed[0].id, null)
}

output "legacy_speed_subscription_name" {
  description = "Short name of the legacy speed subscription, null when legacy_enabled = false."
  value       = try(google_pubsub_subscription.legacy_speed[0].name, null)
}

output "archive_subscription_id" {
  description = "Full id of the Cloud Storage (archive) subscription."
  value       = google_pubsub_subscription.archive.id
}

output "archive_root" {
  description = "gs:// root under which the archive subscription writes its files."
  value       = "gs://${var.archive.bucket}/${var.archive.filename_prefix}"
}
