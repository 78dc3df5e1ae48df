variable "project_id" {
  type        = string
  description = "Project that owns the cluster."
}

variable "region" {
  type        = string
  description = "Dataproc region."
}

variable "cluster_name" {
  type        = string
  description = "Name of the Dataproc cluster that runs the legacy speed (PyFlink) job."
  default     = "legacy-speed"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,49}[a-z0-9])?$", var.cluster_name))
    error_message = "cluster_name must be lowercase letters, digits and hyphens, starting with a letter (max 51 characters)."
  }
}

variable "image_version" {
  type        = string
  description = "Dataproc image version; it must offer the FLINK optional component."
  default     = "2.2-debian12"
}

variable "machine_type" {
  type        = string
  description = "Machine type of master and workers."
  default     = "n2-standard-4"
}

variable "worker_count" {
  type        = number
  description = "Primary worker count (2 is the Dataproc minimum for a standard cluster)."
  default     = 2

  validation {
    condition     = var.worker_count >= 2
    error_message = "worker_count must be at least 2."
  }
}

variable "subscription_name" {
  type        = string
  description = "Short name of the legacy speed subscription (subscriber on it only)."
}

variable "legacy_dataset_id" {
  type        = string
  description = "Dataset the speed layer writes (dataEditor on it only)."
}

variable "staging_bucket" {
  type        = string
  description = "Bucket for Dataproc staging and temp files (objectAdmin on it only)."
}

variable "subnetwork" {
  type        = string
  description = "Subnetwork of the cluster; must have Private Google Access (nodes get no public IP). null uses the default network."
  default     = null
}

variable "kms_key_name" {
  type        = string
  description = "Optional Cloud KMS key for persistent disks; null keeps Google-managed keys."
  default     = null
}

variable "labels" {
  type        = map(string)
  description = "Labels added to the cluster."
  default     = {}
}
