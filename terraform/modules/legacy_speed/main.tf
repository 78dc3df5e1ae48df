# Optional home for the legacy speed layer in the cloud: a small Dataproc cluster with the
# FLINK component; `kappactl legacy speed` submits the PyFlink job to it.

resource "google_service_account" "speed" {
  project      = var.project_id
  account_id   = "legacy-speed"
  display_name = "Legacy speed layer (Dataproc Flink) nodes"
}

resource "google_project_iam_member" "speed_dataproc_worker" {
  project = var.project_id
  role    = "roles/dataproc.worker"
  member  = google_service_account.speed.member
}

resource "google_pubsub_subscription_iam_member" "speed" {
  for_each = toset(["roles/pubsub.subscriber", "roles/pubsub.viewer"])

  project      = var.project_id
  subscription = var.subscription_name
  role         = each.value
  member       = google_service_account.speed.member
}

resource "google_bigquery_dataset_iam_member" "speed" {
  project    = var.project_id
  dataset_id = var.legacy_dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.speed.member
}

resource "google_storage_bucket_iam_member" "speed_staging" {
  bucket = var.staging_bucket
  role   = "roles/storage.objectAdmin"
  member = google_service_account.speed.member
}

resource "google_dataproc_cluster" "speed" {
  project = var.project_id
  region  = var.region
  name    = var.cluster_name
  labels  = merge(var.labels, { component = "legacy" })

  cluster_config {
    staging_bucket = var.staging_bucket
    temp_bucket    = var.staging_bucket

    software_config {
      image_version       = var.image_version
      optional_components = ["FLINK"]
    }

    master_config {
      num_instances = 1
      machine_type  = var.machine_type
      disk_config {
        boot_disk_size_gb = 100
      }
    }

    worker_config {
      num_instances = var.worker_count
      machine_type  = var.machine_type
      disk_config {
        boot_disk_size_gb = 100
      }
    }

    gce_cluster_config {
      internal_ip_only       = true
      subnetwork             = var.subnetwork
      service_account        = google_service_account.speed.email
      service_account_scopes = ["cloud-platform"]

      shielded_instance_config {
        enable_secure_boot          = true
        enable_vtpm                 = true
        enable_integrity_monitoring = true
      }
    }

    dynamic "encryption_config" {
      for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
      content {
        kms_key_name = encryption_config.value
      }
    }
  }

  depends_on = [
    google_project_iam_member.speed_dataproc_worker,
    google_storage_bucket_iam_member.speed_staging,
  ]
}
