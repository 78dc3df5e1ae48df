# Two buckets with different jobs: the archive is the replay log of record (versioned,
# tiered to colder classes as it ages); the Dataflow bucket holds templates plus
# throw-away temp/staging objects.

resource "google_storage_bucket" "archive" {
  #checkov:skip=CKV_GCP_62:Legacy usage logs are not used; bucket access is audited with Cloud Audit Logs (see terraform/README.md).
  project                     = var.project_id
  name                        = var.archive_bucket_name
  location                    = var.location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy
  labels                      = merge(var.labels, { component = "archive" })

  versioning {
    enabled = true
  }

  dynamic "encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  lifecycle_rule {
    condition {
      age                   = var.archive_nearline_age_days
      matches_storage_class = ["STANDARD"]
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }

  lifecycle_rule {
    condition {
      age                   = var.archive_coldline_age_days
      matches_storage_class = ["NEARLINE"]
    }
    action {
      type          = "SetStorageClass"
      storage_class = "COLDLINE"
    }
  }

  lifecycle_rule {
    condition {
      with_state                 = "ARCHIVED"
      days_since_noncurrent_time = var.noncurrent_version_age_days
    }
    action {
      type = "Delete"
    }
  }

  lifecycle {
    precondition {
      condition     = var.archive_coldline_age_days > var.archive_nearline_age_days
      error_message = "archive_coldline_age_days must be greater than archive_nearline_age_days."
    }
  }
}

resource "google_storage_bucket" "dataflow" {
  #checkov:skip=CKV_GCP_62:Legacy usage logs are not used; bucket access is audited with Cloud Audit Logs (see terraform/README.md).
  project                     = var.project_id
  name                        = var.dataflow_bucket_name
  location                    = var.location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy
  labels                      = merge(var.labels, { component = "dataflow" })

  # Versioned so that a bad flex-template spec under templates/ can be rolled back.
  versioning {
    enabled = true
  }

  dynamic "encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  lifecycle_rule {
    condition {
      age            = var.temp_object_age_days
      matches_prefix = ["temp/", "staging/"]
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      with_state                 = "ARCHIVED"
      days_since_noncurrent_time = var.noncurrent_version_age_days
    }
    action {
      type = "Delete"
    }
  }
}
