output "alert_policy_ids" {
  description = "Alert policy ids (projects/<p>/alertPolicies/<id>) by condition: shadow_mismatch, validation_fail, stream_stale, legacy_batch_stale."
  value       = { for name, policy in google_monitoring_alert_policy.migration : name => policy.name }
}
