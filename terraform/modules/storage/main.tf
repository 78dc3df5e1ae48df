# Buckets with different jobs and different writers:
# - the archive is the replay log of record (versioned, tiered to colder classes as it ages);
# - the templates bucket holds the flex-template specs the jobs are launched from: workers
#   never get a role on it, so a compromised worker cannot swap what the scheduler launches;
# - one work bucket per worker account (temp/ and staging/ of its own jobs only), so a
#   worker can neither read nor rewrite another arm's staged code.

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

resource "google_storage_bucket" "templates" {
  #checkov:skip=CKV_GCP_62:Legacy usage logs are not used; bucket access is audited with Cloud Audit Logs (see terraform/README.md).
  project                     = var.project_id
  name                        = var.templates_bucket_name
  location                    = var.location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy
  labels                      = merge(var.labels, { component = "templates" })

  # Versioned so that a bad flex-template spec can be rolled back.
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
      with_state                 = "ARCHIVED"
      days_since_noncurrent_time = var.noncurrent_version_age_days
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket" "work" {
  #checkov:skip=CKV_GCP_62:Legacy usage logs are not used; bucket access is audited with Cloud Audit Logs (see terraform/README.md).
  for_each = var.work_buckets

  project                     = var.project_id
  name                        = each.value
  location                    = var.location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy
  labels                      = merge(var.labels, { component = replace(each.key, "_", "-") })

  # Temp and staging files are throw-away, but a staged package overwritten by mistake can
  # be recovered until the noncurrent version expires.
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
      age = var.temp_object_age_days
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
