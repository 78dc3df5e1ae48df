output "crypto_key_id" {
  description = "The key every data store is encrypted with (projects/.../cryptoKeys/...), available once the service agents may use it."
  value       = local.crypto_key_id

  # Resources encrypted with the key fail to create until their service agent may use it.
  depends_on = [google_kms_crypto_key_iam_member.service_agents]
}

output "service_agent_members" {
  description = "The service agents granted encrypter/decrypter on the key, by service."
  value       = var.grant_service_agents ? local.service_agents : {}
}
