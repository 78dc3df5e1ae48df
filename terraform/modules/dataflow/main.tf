locals {
  # Parameter names are the contract with the flex-template metadata built in kappa/ and
  # lambda_legacy/; keep both sides in step.
  timing_parameters = {
    window_size_seconds      = tostring(var.timing.window_size_seconds)
    allowed_lateness_seconds = tostring(var.timing.allowed_lateness_seconds)
    early_firing_seconds     = tostring(var.timing.early_firing_seconds)
    dedup_horizon_seconds    = tostring(var.timing.dedup_horizon_seconds)
  }
}

resource "google_dataflow_flex_template_job" "kappa_stream" {
  provider = google-beta

  project                 = var.project_id
  region                  = var.region
  name                    = var.kappa_stream.job_name
  container_spec_gcs_path = var.kappa_stream.template_gcs_path
  # Drain finishes in-flight windows instead of dropping them on destroy or replacement.
  on_delete               = "drain"
  service_account_email   = var.kappa_stream.service_account_email
  temp_location           = var.kappa_stream.temp_location
  staging_location        = var.kappa_stream.staging_location
  ip_configuration        = "WORKER_IP_PRIVATE"
  enable_streaming_engine = true
  subnetwork              = var.subnetwork
  machine_type            = var.kappa_stream.machine_type
  max_workers             = var.kappa_stream.max_workers
  kms_key_name            = var.kms_key_name
  labels                  = merge(var.labels, { component = "kappa" })

  parameters = merge(local.timing_parameters, {
    subscription      = var.kappa_stream.subscription
    output_table      = var.kappa_stream.output_table
    dead_letter_table = var.kappa_stream.dead_letter_table
  })
}

resource "google_cloud_scheduler_job" "legacy_batch" {
  count = var.legacy_enabled ? 1 : 0

  project          = var.project_id
  region           = var.region
  name             = var.legacy_batch.job_name
  description      = "Launches the legacy batch flex template once per finished batch period."
  schedule         = var.legacy_batch.schedule
  time_zone        = var.legacy_batch.time_zone
  attempt_deadline = "320s"

  retry_config {
    retry_count          = 3
    min_backoff_duration = "30s"
    max_backoff_duration = "300s"
  }

  http_target {
    http_method = "POST"
    uri         = "https://dataflow.googleapis.com/v1b3/projects/${var.project_id}/locations/${var.region}/flexTemplates:launch"
    headers = {
      "Content-Type" = "application/json"
    }
    body = base64encode(jsonencode({
      launchParameter = {
        jobName              = var.legacy_batch.job_name
        containerSpecGcsPath = var.legacy_batch.template_gcs_path
        parameters = {
          archive_root         = var.legacy_batch.archive_root
          output_table         = var.legacy_batch.output_table
          batch_runs_table     = var.legacy_batch.batch_runs_table
          dead_letter_table    = var.legacy_batch.dead_letter_table
          window_size_seconds  = tostring(var.timing.window_size_seconds)
          batch_period_seconds = tostring(var.timing.batch_period_seconds)
          # The job processes the latest period that ended at least this long ago.
          batch_delay_seconds = tostring(var.timing.batch_delay_seconds)
        }
        environment = merge(
          {
            serviceAccountEmail  = var.legacy_batch.service_account_email
            tempLocation         = var.legacy_batch.temp_location
            stagingLocation      = var.legacy_batch.staging_location
            ipConfiguration      = "WORKER_IP_PRIVATE"
            machineType          = var.legacy_batch.machine_type
            maxWorkers           = var.legacy_batch.max_workers
            additionalUserLabels = merge(var.labels, { component = "legacy" })
          },
          var.subnetwork == null ? {} : { subnetwork = var.subnetwork },
          var.kms_key_name == null ? {} : { kmsKeyName = var.kms_key_name },
        )
      }
    }))

    oauth_token {
      service_account_email = var.legacy_batch.launcher_email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  lifecycle {
    precondition {
      condition     = var.legacy_batch != null
      error_message = "legacy_batch must be set while legacy_enabled = true."
    }
  }
}
