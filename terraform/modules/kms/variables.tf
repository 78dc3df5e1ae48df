variable "project_id" {
  type        = string
  description = "Project whose service agents encrypt with the key (and that holds the key ring when one is created)."
}

variable "location" {
  type        = string
  description = "Location of the key ring: the stack's region, since regional buckets, topics, datasets, repositories and jobs need a key in their own region."
}

variable "kms_key_name" {
  type        = string
  description = "An existing key (projects/<p>/locations/<l>/keyRings/<r>/cryptoKeys/<k>) to use instead of creating one; null creates a key ring and key here."
  default     = null
}

variable "key_ring_name" {
  type        = string
  description = "Name of the key ring created when kms_key_name is null (key rings cannot be deleted: pick a new name for a new stack in the same project)."
  default     = "kappa-migration"
}

variable "key_name" {
  type        = string
  description = "Name of the key created when kms_key_name is null."
  default     = "data"
}

variable "rotation_period" {
  type        = string
  description = "Automatic rotation period of the created key, in seconds with an s suffix; at most 90 days (7776000s)."
  default     = "7776000s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.rotation_period)) && try(tonumber(trimsuffix(var.rotation_period, "s")) >= 86400 && tonumber(trimsuffix(var.rotation_period, "s")) <= 7776000, false)
    error_message = "rotation_period must look like \"7776000s\" and lie between 86400s (1 day) and 7776000s (90 days)."
  }
}

variable "protection_level" {
  type        = string
  description = "Protection level of the created key: SOFTWARE or HSM (HSM key versions cost more)."
  default     = "SOFTWARE"

  validation {
    condition     = contains(["SOFTWARE", "HSM"], var.protection_level)
    error_message = "protection_level must be one of: SOFTWARE, HSM."
  }
}

variable "grant_service_agents" {
  type        = bool
  description = "Grant the service agents (Cloud Storage, BigQuery, Pub/Sub, Artifact Registry, Dataflow, Compute Engine, Dataproc) cryptoKeyEncrypterDecrypter on the key. false when the key's IAM is managed elsewhere."
  default     = true
}

variable "dataproc_enabled" {
  type        = bool
  description = "Also grant the Dataproc service agent (only when the legacy speed layer runs on Dataproc)."
  default     = false
}

variable "labels" {
  type        = map(string)
  description = "Labels added to the created key."
  default     = {}
}
