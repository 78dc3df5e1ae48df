# Customer-managed encryption for every data store of the stack: a key ring and a rotating
# key in the stack's region (unless a key is given), and the service agents that encrypt
# on the stack's behalf allowed to use it, and nothing else.

data "google_project" "this" {
  project_id = var.project_id
}

# The Cloud Storage and BigQuery agents are created by reading them; Pub/Sub and Artifact
# Registry create theirs lazily, so they are provisioned before the grants name them.
data "google_storage_project_service_account" "this" {
  project = var.project_id
}

data "google_bigquery_default_service_account" "this" {
  project = var.project_id
}

resource "google_project_service_identity" "this" {
  provider = google-beta
  for_each = toset(["pubsub.googleapis.com", "artifactregistry.googleapis.com"])

  project = var.project_id
  service = each.value
}

locals {
  number = data.google_project.this.number
  service_agents = merge(
    {
      storage           = "serviceAccount:${data.google_storage_project_service_account.this.email_address}"
      bigquery          = "serviceAccount:${data.google_bigquery_default_service_account.this.email}"
      pubsub            = "serviceAccount:${google_project_service_identity.this["pubsub.googleapis.com"].email}"
      artifact_registry = "serviceAccount:${google_project_service_identity.this["artifactregistry.googleapis.com"].email}"
      # Dataflow encrypts job state; Compute Engine the workers' persistent disks.
      dataflow = "serviceAccount:service-${local.number}@dataflow-service-producer-prod.iam.gserviceaccount.com"
      compute  = "serviceAccount:service-${local.number}@compute-system.iam.gserviceaccount.com"
    },
    var.dataproc_enabled ? {
      dataproc = "serviceAccount:service-${local.number}@dataproc-accounts.iam.gserviceaccount.com"
    } : {},
  )
  crypto_key_id = var.kms_key_name != null ? var.kms_key_name : one(google_kms_crypto_key.data[*].id)
}

resource "google_kms_key_ring" "this" {
  count = var.kms_key_name == null ? 1 : 0

  project  = var.project_id
  name     = var.key_ring_name
  location = var.location
}

resource "google_kms_crypto_key" "data" {
  count = var.kms_key_name == null ? 1 : 0

  name            = var.key_name
  key_ring        = google_kms_key_ring.this[0].id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = var.rotation_period
  labels          = var.labels

  version_template {
    algorithm        = "GOOGLE_SYMMETRIC_ENCRYPTION"
    protection_level = var.protection_level
  }

  # Destroying the key would make every bucket, topic, table, image and job state
  # encrypted with it unreadable for good.
  lifecycle {
    prevent_destroy = true
  }
}

resource "google_kms_crypto_key_iam_member" "service_agents" {
  for_each = var.grant_service_agents ? local.service_agents : {}

  crypto_key_id = local.crypto_key_id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = each.value
}
