variable "project_id" {
  type        = string
  description = "Project that owns the buckets."
}

variable "location" {
  type        = string
  description = "Bucket location; a single region keeps Dataflow workers and data together."
}

variable "archive_bucket_name" {
  type        = string
  description = "Name of the archive bucket (raw interaction lines, written by the Pub/Sub Cloud Storage subscription)."
}

variable "templates_bucket_name" {
  type        = string
  description = "Name of the flex-template bucket: no worker account gets a role on it."
}

variable "work_buckets" {
  type        = map(string)
  description = "Bucket name of each worker account's own temp/ and staging/ files, keyed by worker (kappa, legacy_batch, legacy_speed)."

  validation {
    condition     = alltrue([for worker in keys(var.work_buckets) : contains(["kappa", "legacy_batch", "legacy_speed"], worker)])
    error_message = "work_buckets keys must be among: kappa, legacy_batch, legacy_speed."
  }
}

variable "temp_object_age_days" {
  type        = number
  description = "Objects in the work buckets (temp/ and staging/) are deleted after this many days."
  default     = 7

  validation {
    condition     = var.temp_object_age_days >= 1 && var.temp_object_age_days <= 365
    error_message = "temp_object_age_days must be between 1 and 365."
  }
}

variable "archive_nearline_age_days" {
  type        = number
  description = "Archive objects move to NEARLINE after this many days (the backfill reads recent days most)."
  default     = 30

  validation {
    condition     = var.archive_nearline_age_days >= 1
    error_message = "archive_nearline_age_days must be at least 1."
  }
}

variable "archive_coldline_age_days" {
  type        = number
  description = "Archive objects move to COLDLINE after this many days; must be later than the NEARLINE move."
  default     = 90

  validation {
    condition     = var.archive_coldline_age_days >= 1
    error_message = "archive_coldline_age_days must be at least 1."
  }
}

variable "noncurrent_version_age_days" {
  type        = number
  description = "Overwritten or deleted object versions are kept this many days, then deleted."
  default     = 30

  validation {
    condition     = var.noncurrent_version_age_days >= 1
    error_message = "noncurrent_version_age_days must be at least 1."
  }
}

variable "kms_key_name" {
  type        = string
  description = "Cloud KMS key (projects/.../cryptoKeys/...) for default bucket encryption (the envs pass the module's key by default); null keeps Google-managed keys."
  default     = null
}

variable "force_destroy" {
  type        = bool
  description = "Allow terraform destroy to delete non-empty buckets. Keep false outside throw-away environments."
  default     = false
}

variable "labels" {
  type        = map(string)
  description = "Labels added to every bucket."
  default     = {}
}
