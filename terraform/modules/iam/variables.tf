variable "project_id" {
  type        = string
  description = "Project that owns the service accounts."
}

variable "legacy_enabled" {
  type        = bool
  description = "Create the legacy batch worker and launcher accounts and their grants."
  default     = true
}

variable "kappa_subscription_name" {
  type        = string
  description = "Short name of the subscription the kappa stream reads (subscriber on it only)."
}

variable "kappa_dataset_id" {
  type        = string
  description = "Dataset the kappa stream and backfill write (dataEditor on it only)."
}

variable "legacy_dataset_id" {
  type        = string
  description = "Dataset the legacy batch writes; null when legacy_enabled = false."
  default     = null
}

variable "dead_letter_table" {
  type = object({
    dataset_id = string
    table_id   = string
  })
  description = "Dead-letter table every arm appends to (table-level dataEditor, not the whole dataset)."
}

variable "dataflow_bucket" {
  type        = string
  description = "Dataflow temp/staging/templates bucket (objectAdmin for workers)."
}

variable "archive_bucket" {
  type        = string
  description = "Archive bucket (read-only for workers: the batch and the backfill read it)."
}

variable "artifact_registry" {
  type = object({
    location      = string
    repository_id = string
  })
  description = "Repository holding the flex-template images (reader for workers, whose launcher VMs pull them)."
}
