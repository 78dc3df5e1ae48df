variable "project_id" {
  type        = string
  description = "Project that owns the datasets."
}

variable "location" {
  type        = string
  description = "BigQuery location of all datasets (same region as Dataflow)."
}

variable "serving_source" {
  type        = string
  description = "What serving.interaction_counts reads: legacy (legacy.legacy_serving) or kappa (kappa.kappa_stream_current). Switching it is the cloud cutover."
  default     = "legacy"

  validation {
    condition     = contains(["legacy", "kappa"], var.serving_source)
    error_message = "serving_source must be one of: legacy, kappa."
  }
}

variable "legacy_enabled" {
  type        = bool
  description = "Create the legacy dataset, its tables and views. false once the migration is DECOMMISSIONED."
  default     = true
}

variable "batch_period_seconds" {
  type        = number
  description = "Legacy batch period in whole seconds; the serving view truncates window_start to it. The rule is that of time.batch_period in pipelines/config.py."
  default     = 3600

  validation {
    condition     = floor(var.batch_period_seconds) == var.batch_period_seconds && (var.batch_period_seconds > 3600 ? var.batch_period_seconds % 3600 == 0 : var.batch_period_seconds >= 60 ? 3600 % var.batch_period_seconds == 0 && var.batch_period_seconds % 60 == 0 : false)
    error_message = "batch_period_seconds must be whole minutes dividing an hour (60, 120, 300, 900, 1800, 3600) or, above an hour, whole hours (7200, 86400)."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the kappa and migration tables from terraform destroy."
  default     = true
}

variable "legacy_deletion_protection" {
  type        = bool
  description = "Protect the legacy tables. Set false (and apply) before legacy_enabled = false removes them."
  default     = true
}

variable "partition_expiration_days" {
  type        = number
  description = "Partitions of the aggregate and dead-letter tables older than this are dropped; 0 keeps them forever."
  default     = 0

  validation {
    condition     = var.partition_expiration_days >= 0
    error_message = "partition_expiration_days must be 0 (never) or a positive number of days."
  }
}

variable "kms_key_name" {
  type        = string
  description = "Optional Cloud KMS key for datasets and tables; null keeps Google-managed keys."
  default     = null
}

variable "labels" {
  type        = map(string)
  description = "Labels added to datasets and tables."
  default     = {}
}
