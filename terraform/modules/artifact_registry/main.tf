resource "google_artifact_registry_repository" "flex_templates" {
  project       = var.project_id
  location      = var.location
  repository_id = var.repository_id
  description   = "Flex-template launcher images of the kappa stream/backfill and legacy batch jobs."
  format        = "DOCKER"
  kms_key_name  = var.kms_key_name
  labels        = var.labels

  # A template spec pins an image tag; immutable tags keep a spec meaning one image.
  docker_config {
    immutable_tags = true
  }

  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = var.keep_recent_versions
    }
  }

  cleanup_policies {
    id     = "delete-old-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "${var.untagged_max_age_days * 86400}s"
    }
  }
}
