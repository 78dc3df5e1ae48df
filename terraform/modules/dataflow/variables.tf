variable "project_id" {
  type        = string
  description = "Project the jobs run in."
}

variable "region" {
  type        = string
  description = "Dataflow (and Cloud Scheduler) region."
}

variable "legacy_enabled" {
  type        = bool
  description = "Create the scheduled legacy batch. false once the migration is DECOMMISSIONED."
  default     = true
}

variable "kappa_stream" {
  type = object({
    job_name              = optional(string, "kappa-stream")
    template_gcs_path     = string
    service_account_email = string
    temp_location         = string
    staging_location      = string
    subscription          = string
    output_table          = string
    dead_letter_table     = string
    machine_type          = optional(string, "n2-standard-2")
    max_workers           = optional(number, 3)
  })
  description = "Kappa streaming job: flex-template spec (gs://...json), worker account and its own gs:// temp and staging locations, the subscription path it reads, the project.dataset.table it writes and the dead-letter table."

  validation {
    condition     = startswith(var.kappa_stream.template_gcs_path, "gs://") && endswith(var.kappa_stream.template_gcs_path, ".json")
    error_message = "kappa_stream.template_gcs_path must be a gs://.../<name>.json flex-template spec."
  }

  validation {
    condition     = var.kappa_stream.max_workers >= 1 && var.kappa_stream.max_workers <= 1000
    error_message = "kappa_stream.max_workers must be between 1 and 1000."
  }
}

variable "timing" {
  type = object({
    window_size_seconds      = number
    allowed_lateness_seconds = number
    early_firing_seconds     = number
    dedup_horizon_seconds    = number
    batch_period_seconds     = number
    batch_delay_seconds      = number
  })
  description = "Time parameters of DESIGN.md section 3 (production profile by default in envs/dev), in whole seconds; the rules are those of pipelines/config.py (tests/terraform/test_timing_agrees.py feeds both the same values)."

  validation {
    condition     = alltrue([for value in values(var.timing) : value >= 1 && floor(value) == value])
    error_message = "timing: every value must be a whole number of seconds, at least 1 (the flex templates take positive integers; a zero lateness or delay is refused by the config too)."
  }

  validation {
    condition     = var.timing.batch_period_seconds > 3600 ? var.timing.batch_period_seconds % 3600 == 0 : var.timing.batch_period_seconds >= 60 ? 3600 % var.timing.batch_period_seconds == 0 && var.timing.batch_period_seconds % 60 == 0 : false
    error_message = "timing.batch_period_seconds must be whole minutes dividing an hour (60, 120, 300, 900, 1800, 3600) or, above an hour, whole hours (7200, 86400)."
  }

  validation {
    condition     = var.timing.window_size_seconds >= 1 ? var.timing.batch_period_seconds % var.timing.window_size_seconds == 0 : false
    error_message = "timing.batch_period_seconds must be a multiple of timing.window_size_seconds."
  }
}

variable "legacy_batch" {
  type = object({
    job_name              = optional(string, "legacy-batch")
    template_gcs_path     = string
    service_account_email = string
    temp_location         = string
    staging_location      = string
    launcher_email        = string
    archive_root          = string
    output_table          = string
    batch_runs_table      = string
    dead_letter_table     = string
    schedule              = optional(string, "15 * * * *")
    time_zone             = optional(string, "Etc/UTC")
    machine_type          = optional(string, "n2-standard-2")
    max_workers           = optional(number, 5)
  })
  description = "Scheduled legacy batch: flex-template spec, worker and launcher accounts, the worker's own gs:// temp and staging locations, archive root, output tables, and the cron schedule (default: every hour at :15, i.e. batch_delay after each hourly period). null when legacy_enabled = false."
  default     = null

  validation {
    condition     = var.legacy_batch == null || try(startswith(var.legacy_batch.template_gcs_path, "gs://") && endswith(var.legacy_batch.template_gcs_path, ".json"), false)
    error_message = "legacy_batch.template_gcs_path must be a gs://.../<name>.json flex-template spec."
  }
}

variable "subnetwork" {
  type        = string
  description = "Subnetwork for workers (regions/<region>/subnetworks/<name> or a full URL); must have Private Google Access because workers get no public IP. null uses the default network."
  default     = null
}

variable "kms_key_name" {
  type        = string
  description = "Cloud KMS key for job state (the envs pass the module's key by default); null keeps Google-managed keys."
  default     = null
}

variable "labels" {
  type        = map(string)
  description = "Labels added to jobs."
  default     = {}
}
