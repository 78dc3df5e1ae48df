data "google_project" "this" {
  project_id = var.project_id
}

locals {
  # Pub/Sub forwards dead letters and writes Cloud Storage files as this service agent.
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic" "interactions" {
  project                    = var.project_id
  name                       = var.topic_name
  message_retention_duration = var.topic_message_retention
  kms_key_name               = var.kms_key_name
  labels                     = var.labels

  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }
}

resource "google_pubsub_topic" "dead_letter" {
  project                    = var.project_id
  name                       = "${var.topic_name}-dead-letter"
  message_retention_duration = var.topic_message_retention
  kms_key_name               = var.kms_key_name
  labels                     = var.labels

  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }
}

# Messages published to a topic without subscriptions are lost; this one keeps
# dead letters for inspection and re-publication.
resource "google_pubsub_subscription" "dead_letter" {
  project                    = var.project_id
  name                       = "${var.topic_name}-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  ack_deadline_seconds       = var.ack_deadline_seconds
  message_retention_duration = var.subscription_message_retention
  retain_acked_messages      = true
  labels                     = var.labels

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "kappa" {
  project                    = var.project_id
  name                       = "kappa"
  topic                      = google_pubsub_topic.interactions.id
  ack_deadline_seconds       = var.ack_deadline_seconds
  message_retention_duration = var.subscription_message_retention
  # Acked messages stay so the stream can be replayed with a time-based seek.
  retain_acked_messages = true
  labels                = merge(var.labels, { component = "kappa" })

  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = var.retry_backoff.minimum
    maximum_backoff = var.retry_backoff.maximum
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }
}

resource "google_pubsub_subscription" "legacy_speed" {
  count = var.legacy_enabled ? 1 : 0

  project                    = var.project_id
  name                       = "legacy-speed"
  topic                      = google_pubsub_topic.interactions.id
  ack_deadline_seconds       = var.ack_deadline_seconds
  message_retention_duration = var.subscription_message_retention
  labels                     = merge(var.labels, { component = "legacy" })

  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = var.retry_backoff.minimum
    maximum_backoff = var.retry_backoff.maximum
  }
}

resource "google_pubsub_subscription" "archive" {
  project                    = var.project_id
  name                       = "archive"
  topic                      = google_pubsub_topic.interactions.id
  ack_deadline_seconds       = 300
  message_retention_duration = var.subscription_message_retention
  labels                     = merge(var.labels, { component = "archive" })

  expiration_policy {
    ttl = ""
  }

  # Text output: one message body per line, exactly as published (bad records included).
  cloud_storage_config {
    bucket                   = var.archive.bucket
    filename_prefix          = var.archive.filename_prefix
    filename_suffix          = var.archive.filename_suffix
    filename_datetime_format = var.archive.filename_datetime_format
    max_duration             = var.archive.max_duration
    max_bytes                = var.archive.max_bytes
  }

  depends_on = [
    google_storage_bucket_iam_member.archive_writer,
  ]
}

# --- grants the Pub/Sub service agent needs for the features above -------------------

resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_source_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.kappa.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

resource "google_storage_bucket_iam_member" "archive_writer" {
  for_each = toset(["roles/storage.objectCreator", "roles/storage.legacyBucketReader"])

  bucket = var.archive.bucket
  role   = each.value
  member = local.pubsub_service_agent
}
