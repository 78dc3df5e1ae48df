variable "project_id" {
  type        = string
  description = "Project that owns the repository."
}

variable "location" {
  type        = string
  description = "Region of the repository (same as Dataflow, so launches pull images locally)."
}

variable "repository_id" {
  type        = string
  description = "Repository id; images are <location>-docker.pkg.dev/<project>/<repository_id>/<image>."
  default     = "dataflow-templates"

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", var.repository_id))
    error_message = "repository_id must be lowercase letters, digits and hyphens, starting with a letter (max 63 characters)."
  }
}

variable "keep_recent_versions" {
  type        = number
  description = "Cleanup policy: the newest N versions of each image are always kept."
  default     = 10

  validation {
    condition     = var.keep_recent_versions >= 1
    error_message = "keep_recent_versions must be at least 1."
  }
}

variable "untagged_max_age_days" {
  type        = number
  description = "Cleanup policy: untagged images older than this many days are deleted."
  default     = 14

  validation {
    condition     = var.untagged_max_age_days >= 1
    error_message = "untagged_max_age_days must be at least 1."
  }
}

variable "kms_key_name" {
  type        = string
  description = "Optional Cloud KMS key for the repository; null keeps Google-managed keys. Changing it recreates the repository."
  default     = null
}

variable "labels" {
  type        = map(string)
  description = "Labels added to the repository."
  default     = {}
}
