output "repository_id" {
  description = "Short id of the repository (for IAM bindings)."
  value       = google_artifact_registry_repository.flex_templates.repository_id
}

output "repository_name" {
  description = "Full resource name of the repository."
  value       = google_artifact_registry_repository.flex_templates.id
}

output "image_prefix" {
  description = "Docker image prefix: <location>-docker.pkg.dev/<project>/<repository>."
  value       = "${var.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.flex_templates.repository_id}"
}
