# Cloud Monitoring alert policies for the migration's rollback conditions: the same PromQL
# as deploy/prometheus/migration-rules.yml, over the serving API's metrics (kappa_serving_*)
# as Managed Service for Prometheus ingests them.
locals {
  t = var.thresholds

  policies = {
    shadow_mismatch = {
      display_name  = "Migration: shadow reads disagree"
      severity      = "CRITICAL"
      duration      = "300s"
      query         = <<-EOT
        (
          sum(increase(kappa_serving_shadow_keys_mismatched_total[15m]))
            / sum(increase(kappa_serving_shadow_keys_compared_total[15m]))
          > ${local.t.shadow_mismatch_rate}
        )
        and on () sum(increase(kappa_serving_shadow_keys_compared_total[15m])) >= ${local.t.min_shadow_keys}
        and on () sum(kappa_serving_cutover_stage{stage=~"CANARY|FULL"}) == 1
      EOT
      documentation = "Shadow-read keys mismatch above ${local.t.shadow_mismatch_rate * 100}% over 15 minutes while kappa serves reads (CANARY/FULL). Run `kappactl cutover check`, or roll back from the migration console (/console) or with `kappactl cutover rollback --reason ...`."
    }
    validation_fail = {
      display_name  = "Migration: validation FAIL"
      severity      = "CRITICAL"
      duration      = "0s"
      query         = "kappa_serving_migration_validation_last_verdict{verdict=\"FAIL\"} == 1"
      documentation = "The newest legacy_serving vs kappa_stream validation run FAILed. Its report.html is linked from the migration console; during CANARY/FULL the cutover rolls back."
    }
    stream_stale = {
      display_name  = "Migration: a streaming arm is stale"
      severity      = "WARNING"
      duration      = "300s"
      query         = "kappa_serving_migration_arm_lag_seconds{arm=~\"kappa_stream|legacy_speed\"} > ${local.t.stream_lag_seconds}"
      documentation = "kappa_stream or legacy_speed has written no newer window for ${local.t.stream_lag_seconds} s: check its Dataflow or Dataproc job."
    }
    legacy_batch_stale = {
      display_name  = "Migration: legacy batch missed a period"
      severity      = "WARNING"
      duration      = "900s"
      query         = "kappa_serving_migration_arm_lag_seconds{arm=\"legacy_batch\"} > ${local.t.legacy_batch_lag_hours * 3600}"
      documentation = "The newest legacy_batch window ended more than ${local.t.legacy_batch_lag_hours} h ago: check the Cloud Scheduler job and its Dataflow runs."
    }
  }
}

resource "google_monitoring_alert_policy" "migration" {
  for_each = var.alerts_enabled ? local.policies : {}

  project               = var.project_id
  display_name          = each.value.display_name
  combiner              = "OR"
  severity              = each.value.severity
  notification_channels = var.notification_channels
  user_labels           = merge(var.labels, { system = "kappa-migration", condition = replace(each.key, "_", "-") })

  conditions {
    display_name = each.value.display_name

    condition_prometheus_query_language {
      query               = each.value.query
      duration            = each.value.duration
      evaluation_interval = "60s"
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    content   = each.value.documentation
    mime_type = "text/markdown"
  }
}
