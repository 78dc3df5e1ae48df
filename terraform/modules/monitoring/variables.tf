variable "project_id" {
  type        = string
  description = "Project whose Cloud Monitoring holds the alert policies (and the serving API's Prometheus metrics, via Managed Service for Prometheus)."
}

variable "alerts_enabled" {
  type        = bool
  description = "Create the migration alert policies; false removes them (e.g. after DECOMMISSIONED)."
  default     = true
}

variable "notification_channels" {
  type        = list(string)
  description = "Notification channel ids (projects/<p>/notificationChannels/<id>) the policies notify; empty: incidents only."
  default     = []
}

variable "thresholds" {
  type = object({
    shadow_mismatch_rate   = number
    min_shadow_keys        = number
    stream_lag_seconds     = number
    legacy_batch_lag_hours = number
  })
  description = "The rollback conditions: policy max_shadow_mismatch_rate and MIN_SHADOW_KEYS (config/policy.yaml, cutover gate), and how far behind the wall clock the streaming arms and the legacy batch may fall."
  default = {
    shadow_mismatch_rate   = 0.10
    min_shadow_keys        = 100
    stream_lag_seconds     = 600
    legacy_batch_lag_hours = 3
  }

  validation {
    condition     = var.thresholds.shadow_mismatch_rate > 0 && var.thresholds.shadow_mismatch_rate <= 1
    error_message = "thresholds.shadow_mismatch_rate must be in (0, 1]."
  }

  validation {
    condition     = var.thresholds.min_shadow_keys >= 0 && var.thresholds.stream_lag_seconds >= 60 && var.thresholds.legacy_batch_lag_hours >= 1
    error_message = "thresholds: min_shadow_keys >= 0, stream_lag_seconds >= 60 and legacy_batch_lag_hours >= 1."
  }
}

variable "labels" {
  type        = map(string)
  description = "User labels on every alert policy."
  default     = {}
}
