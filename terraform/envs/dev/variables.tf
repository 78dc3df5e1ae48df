# --- where ----------------------------------------------------------------------------

variable "project_id" {
  type        = string
  description = "Google Cloud project id everything is created in."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "Region of every regional resource (Pub/Sub storage, buckets, BigQuery, Dataflow, Scheduler), e.g. europe-west1."
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+(-[a-z]+)+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1 or us-central1 (not a zone, not a multi-region)."
  }
}

variable "subnetwork" {
  type        = string
  description = "Subnetwork for Dataflow workers and Dataproc nodes (regions/<region>/subnetworks/<name>); needs Private Google Access. null uses the default network."
  default     = null
}

variable "labels" {
  type        = map(string)
  description = "Labels added to every resource that takes labels."
  default     = {}
}

variable "cmek_enabled" {
  type        = bool
  description = "Encrypt every bucket, topic, dataset and table, the image repository, the Dataflow job state and the Dataproc disks with a customer-managed Cloud KMS key (kms_key_name, or a key ring and 90-day-rotating key created here). Opting out (false) keeps Google-managed keys: it saves the KMS charges (per active key version each month, kept for every rotation, plus per-operation fees) and removes the risk that a disabled or destroyed key makes the data unreadable, but you can no longer revoke access to the data by revoking the key, nor audit its use in the KMS logs."
  default     = true
}

variable "kms_key_name" {
  type        = string
  description = "An existing Cloud KMS key (projects/<p>/locations/<region>/keyRings/<r>/cryptoKeys/<k>) to use for CMEK; null creates one (module kms). Ignored when cmek_enabled = false."
  default     = null

  validation {
    condition     = var.kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.kms_key_name))
    error_message = "kms_key_name must be null or projects/<p>/locations/<l>/keyRings/<r>/cryptoKeys/<k>."
  }
}

variable "kms_grant_service_agents" {
  type        = bool
  description = "Grant the service agents of Cloud Storage, BigQuery, Pub/Sub, Artifact Registry, Dataflow, Compute Engine (and Dataproc) cryptoKeyEncrypterDecrypter on the key. false when the key's IAM is managed elsewhere (then grant them there before the first apply)."
  default     = true
}

variable "template_publishers" {
  type        = list(string)
  description = "IAM members (e.g. a CI serviceAccount:...) that build the flex templates and may write the templates bucket; never a worker account. Empty: only project owners can."
  default     = []
}

# --- migration switches (one per cutover step, see terraform/README.md) ----------------

variable "serving_source" {
  type        = string
  description = "Arm serving.interaction_counts reads: legacy until `kappactl cutover` reaches FULL, then kappa. Setting it back to legacy is the rollback."
  default     = "legacy"

  validation {
    condition     = contains(["legacy", "kappa"], var.serving_source)
    error_message = "serving_source must be one of: legacy, kappa."
  }
}

variable "legacy_enabled" {
  type        = bool
  description = "Keep the legacy Lambda arm (speed subscription, batch schedule, legacy dataset, accounts). false once the cutover is DECOMMISSIONED."
  default     = true
}

variable "legacy_speed_on_dataproc" {
  type        = bool
  description = "Run the legacy speed layer on a Dataproc cluster with the FLINK component (only while legacy_enabled)."
  default     = false
}

variable "legacy_deletion_protection" {
  type        = bool
  description = "Deletion protection of the legacy BigQuery tables; set false and apply before legacy_enabled = false."
  default     = true
}

variable "deletion_protection" {
  type        = bool
  description = "Deletion protection of the kappa and migration BigQuery tables."
  default     = true
}

# --- Pub/Sub ----------------------------------------------------------------------------

variable "topic_message_retention" {
  type        = string
  description = "Replay window of the interactions topic, e.g. \"604800s\" (600s..2678400s)."
  default     = "604800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.topic_message_retention)) && try(tonumber(trimsuffix(var.topic_message_retention, "s")) >= 600 && tonumber(trimsuffix(var.topic_message_retention, "s")) <= 2678400, false)
    error_message = "topic_message_retention must look like \"604800s\" and lie between 600s (10 minutes) and 2678400s (31 days)."
  }
}

variable "subscription_message_retention" {
  type        = string
  description = "Retention of (acked) messages on the subscriptions, e.g. \"604800s\" (600s..604800s)."
  default     = "604800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.subscription_message_retention)) && try(tonumber(trimsuffix(var.subscription_message_retention, "s")) >= 600 && tonumber(trimsuffix(var.subscription_message_retention, "s")) <= 604800, false)
    error_message = "subscription_message_retention must look like \"604800s\" and lie between 600s (10 minutes) and 604800s (7 days)."
  }
}

variable "max_delivery_attempts" {
  type        = number
  description = "Deliveries of one message on the kappa subscription before it goes to the dead-letter topic (5..100)."
  default     = 10

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100."
  }
}

variable "archive_filename_datetime_format" {
  type        = string
  description = "Datetime part of archive object names written by the Cloud Storage subscription (arrival time, UTC)."
  default     = "YYYY-MM-DD/hh/mm_ssZ"
}

# --- storage ----------------------------------------------------------------------------

variable "temp_object_age_days" {
  type        = number
  description = "Dataflow temp/ and staging/ objects are deleted after this many days."
  default     = 7

  validation {
    condition     = var.temp_object_age_days >= 1 && var.temp_object_age_days <= 365
    error_message = "temp_object_age_days must be between 1 and 365."
  }
}

variable "archive_storage_class_ages" {
  type = object({
    nearline_days = number
    coldline_days = number
  })
  description = "Age in days at which archive objects move to NEARLINE and then COLDLINE."
  default = {
    nearline_days = 30
    coldline_days = 90
  }

  validation {
    condition     = var.archive_storage_class_ages.nearline_days >= 1 && var.archive_storage_class_ages.coldline_days > var.archive_storage_class_ages.nearline_days
    error_message = "archive_storage_class_ages: nearline_days must be >= 1 and coldline_days greater than nearline_days."
  }
}

variable "force_destroy" {
  type        = bool
  description = "Let terraform destroy delete non-empty buckets (throw-away environments only)."
  default     = false
}

# --- pipelines --------------------------------------------------------------------------

variable "timing" {
  type = object({
    window_size_seconds      = number
    allowed_lateness_seconds = number
    early_firing_seconds     = number
    dedup_horizon_seconds    = number
    batch_period_seconds     = number
    batch_delay_seconds      = number
  })
  description = "Time parameters of DESIGN.md section 3 in whole seconds; the defaults are the production profile (config/production.yaml), the rules those of pipelines/config.py for the cloud profile."
  default = {
    window_size_seconds      = 60
    allowed_lateness_seconds = 3600
    early_firing_seconds     = 10
    dedup_horizon_seconds    = 3600
    batch_period_seconds     = 3600
    batch_delay_seconds      = 900
  }

  # The other rules are the dataflow module's (and the bigquery module's, for the period).
  validation {
    condition     = var.timing.batch_delay_seconds >= 300
    error_message = "timing.batch_delay_seconds must be at least 300, the archive subscription's max_duration: a period's batch must wait until every Cloud Storage object holding its arrivals is complete."
  }
}

variable "kappa_template_gcs_path" {
  type        = string
  description = "gs:// path of the kappa stream flex-template spec; null means <dataflow bucket>/templates/kappa_stream.json."
  default     = null
}

variable "legacy_batch_template_gcs_path" {
  type        = string
  description = "gs:// path of the legacy batch flex-template spec; null means <dataflow bucket>/templates/legacy_batch.json."
  default     = null
}

variable "legacy_batch_schedule" {
  type        = string
  description = "Cron schedule (UTC) of the legacy batch launch; default hourly at :15 (batch_period 1 h + batch_delay 15 min)."
  default     = "15 * * * *"

  validation {
    condition     = length(split(" ", var.legacy_batch_schedule)) == 5
    error_message = "legacy_batch_schedule must be a 5-field cron expression, e.g. \"15 * * * *\"."
  }
}

variable "dataflow_max_workers" {
  type        = number
  description = "Autoscaling ceiling of each Dataflow job."
  default     = 3

  validation {
    condition     = var.dataflow_max_workers >= 1 && var.dataflow_max_workers <= 1000
    error_message = "dataflow_max_workers must be between 1 and 1000."
  }
}

variable "enable_apis" {
  type        = bool
  description = "Enable the Google APIs this stack uses (never disabled on destroy)."
  default     = true
}

variable "migration_alerts_enabled" {
  type        = bool
  description = "Cloud Monitoring alert policies for the rollback conditions (shadow mismatches, validation FAIL, stale arms); see terraform/modules/monitoring."
  default     = true
}

variable "alert_notification_channels" {
  type        = list(string)
  description = "Notification channel ids the migration alert policies notify; empty: incidents only."
  default     = []
}
