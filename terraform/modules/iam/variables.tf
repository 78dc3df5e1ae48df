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

variable "work_buckets" {
  type = object({
    kappa        = string
    legacy_batch = optional(string)
  })
  description = "Each worker account's own temp/staging bucket (objectAdmin for that worker only); legacy_batch is required while legacy_enabled."
}

variable "templates_bucket" {
  type        = string
  description = "Flex-template bucket: objectViewer for the legacy batch launcher, objectAdmin for template_publishers, nothing for any worker."
}

variable "template_publishers" {
  type        = list(string)
  description = "Members (serviceAccount:..., group:...) that build and upload flex templates, e.g. a CI account; objectAdmin on the templates bucket. Never a worker account. Empty: only project owners (the deployer) can write it."
  default     = []

  validation {
    condition     = alltrue([for m in var.template_publishers : can(regex("^(serviceAccount|user|group|domain):", m))])
    error_message = "template_publishers entries must be IAM members such as serviceAccount:ci@p.iam.gserviceaccount.com or group:deployers@example.com."
  }
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
