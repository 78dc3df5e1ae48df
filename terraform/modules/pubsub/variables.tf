variable "project_id" {
  type        = string
  description = "Project that owns the topics and subscriptions."
}

variable "region" {
  type        = string
  description = "Only region where Pub/Sub may persist messages (message storage policy)."
}

variable "topic_name" {
  type        = string
  description = "Topic the bridge publishes interaction events to."
  default     = "interactions"
}

variable "topic_message_retention" {
  type        = string
  description = "How long the topic keeps messages for replay (seek), as seconds with an 's' suffix, 600s..2678400s."
  default     = "604800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.topic_message_retention)) && try(tonumber(trimsuffix(var.topic_message_retention, "s")) >= 600 && tonumber(trimsuffix(var.topic_message_retention, "s")) <= 2678400, false)
    error_message = "topic_message_retention must look like \"604800s\" and lie between 600s (10 minutes) and 2678400s (31 days)."
  }
}

variable "subscription_message_retention" {
  type        = string
  description = "How long subscriptions keep (also acked) messages, as seconds with an 's' suffix, 600s..604800s."
  default     = "604800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.subscription_message_retention)) && try(tonumber(trimsuffix(var.subscription_message_retention, "s")) >= 600 && tonumber(trimsuffix(var.subscription_message_retention, "s")) <= 604800, false)
    error_message = "subscription_message_retention must look like \"604800s\" and lie between 600s (10 minutes) and 604800s (7 days)."
  }
}

variable "ack_deadline_seconds" {
  type        = number
  description = "Ack deadline of the pull subscriptions (10..600)."
  default     = 60

  validation {
    condition     = var.ack_deadline_seconds >= 10 && var.ack_deadline_seconds <= 600
    error_message = "ack_deadline_seconds must be between 10 and 600."
  }
}

variable "max_delivery_attempts" {
  type        = number
  description = "Deliveries of one message before it is forwarded to the dead-letter topic (5..100)."
  default     = 10

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100."
  }
}

variable "retry_backoff" {
  type = object({
    minimum = string
    maximum = string
  })
  description = "Exponential redelivery backoff of the pull subscriptions, e.g. { minimum = \"10s\", maximum = \"600s\" } (0s..600s)."
  default = {
    minimum = "10s"
    maximum = "600s"
  }

  validation {
    condition = alltrue([
      for d in [var.retry_backoff.minimum, var.retry_backoff.maximum] :
      can(regex("^[0-9]+s$", d)) && try(tonumber(trimsuffix(d, "s")) <= 600, false)
    ])
    error_message = "retry_backoff.minimum and retry_backoff.maximum must look like \"10s\" and be at most 600s."
  }
}

variable "archive" {
  type = object({
    bucket                   = string
    filename_prefix          = optional(string, "interactions/")
    filename_suffix          = optional(string, ".jsonl")
    filename_datetime_format = optional(string, "YYYY-MM-DD/hh/mm_ssZ")
    max_duration             = optional(string, "300s")
    max_bytes                = optional(number, 134217728)
  })
  description = "Cloud Storage (archive) subscription: target bucket and object naming. The datetime part is the arrival (UTC) time of the file; see terraform/README.md for how it maps to the local dt=/hr= layout."

  validation {
    condition     = can(regex("^[0-9]+s$", var.archive.max_duration)) && try(tonumber(trimsuffix(var.archive.max_duration, "s")) >= 60 && tonumber(trimsuffix(var.archive.max_duration, "s")) <= 600, false)
    error_message = "archive.max_duration must look like \"300s\" and lie between 60s and 600s."
  }

  validation {
    condition     = !endswith(var.archive.filename_suffix, "/")
    error_message = "archive.filename_suffix must not end with \"/\"."
  }
}

variable "legacy_enabled" {
  type        = bool
  description = "Create the legacy speed-layer subscription. false once the migration is DECOMMISSIONED."
  default     = true
}

variable "kms_key_name" {
  type        = string
  description = "Optional Cloud KMS key for the topics; null keeps Google-managed keys."
  default     = null
}

variable "labels" {
  type        = map(string)
  description = "Labels added to topics and subscriptions."
  default     = {}
}
