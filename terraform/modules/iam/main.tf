# Least privilege: project-level roles only where Google offers no narrower scope
# (dataflow.worker, bigquery.jobUser, dataflow.developer); everything else is granted on
# the one subscription, dataset, table, bucket or repository an account uses. Each worker
# writes only its own work bucket; no worker has any role on the templates bucket (only the
# launcher reads it, only the template publishers and the deployer write it).

locals {
  worker_project_roles = toset([
    "roles/dataflow.worker",
    # Batch writes (backfill, legacy batch) use BigQuery load jobs.
    "roles/bigquery.jobUser",
  ])
}

# --- kappa stream / backfill worker ---------------------------------------------------

resource "google_service_account" "kappa_worker" {
  project      = var.project_id
  account_id   = "kappa-stream-worker"
  display_name = "Kappa stream and backfill Dataflow worker"
}

resource "google_project_iam_member" "kappa_worker" {
  for_each = local.worker_project_roles

  project = var.project_id
  role    = each.value
  member  = google_service_account.kappa_worker.member
}

resource "google_pubsub_subscription_iam_member" "kappa_worker" {
  # Dataflow's Pub/Sub source also reads the subscription's metadata (viewer).
  for_each = toset(["roles/pubsub.subscriber", "roles/pubsub.viewer"])

  project      = var.project_id
  subscription = var.kappa_subscription_name
  role         = each.value
  member       = google_service_account.kappa_worker.member
}

resource "google_bigquery_dataset_iam_member" "kappa_worker" {
  project    = var.project_id
  dataset_id = var.kappa_dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.kappa_worker.member
}

resource "google_bigquery_table_iam_member" "kappa_worker_dead_letter" {
  project    = var.project_id
  dataset_id = var.dead_letter_table.dataset_id
  table_id   = var.dead_letter_table.table_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.kappa_worker.member
}

resource "google_storage_bucket_iam_member" "kappa_worker_work" {
  bucket = var.work_buckets.kappa
  role   = "roles/storage.objectAdmin"
  member = google_service_account.kappa_worker.member
}

resource "google_storage_bucket_iam_member" "kappa_worker_archive" {
  bucket = var.archive_bucket
  role   = "roles/storage.objectViewer"
  member = google_service_account.kappa_worker.member
}

resource "google_artifact_registry_repository_iam_member" "kappa_worker" {
  project    = var.project_id
  location   = var.artifact_registry.location
  repository = var.artifact_registry.repository_id
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.kappa_worker.member
}

# --- legacy batch worker --------------------------------------------------------------

resource "google_service_account" "legacy_batch_worker" {
  count = var.legacy_enabled ? 1 : 0

  project      = var.project_id
  account_id   = "legacy-batch-worker"
  display_name = "Legacy batch Dataflow worker"
}

resource "google_project_iam_member" "legacy_batch_worker" {
  for_each = var.legacy_enabled ? local.worker_project_roles : toset([])

  project = var.project_id
  role    = each.value
  member  = google_service_account.legacy_batch_worker[0].member
}

resource "google_bigquery_dataset_iam_member" "legacy_batch_worker" {
  count = var.legacy_enabled ? 1 : 0

  project    = var.project_id
  dataset_id = var.legacy_dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.legacy_batch_worker[0].member

  lifecycle {
    precondition {
      condition     = var.legacy_dataset_id != null
      error_message = "legacy_dataset_id is required while legacy_enabled = true."
    }
  }
}

resource "google_bigquery_table_iam_member" "legacy_batch_worker_dead_letter" {
  count = var.legacy_enabled ? 1 : 0

  project    = var.project_id
  dataset_id = var.dead_letter_table.dataset_id
  table_id   = var.dead_letter_table.table_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.legacy_batch_worker[0].member
}

resource "google_storage_bucket_iam_member" "legacy_batch_worker_work" {
  count = var.legacy_enabled ? 1 : 0

  bucket = var.work_buckets.legacy_batch
  role   = "roles/storage.objectAdmin"
  member = google_service_account.legacy_batch_worker[0].member

  lifecycle {
    precondition {
      condition     = var.work_buckets.legacy_batch != null
      error_message = "work_buckets.legacy_batch is required while legacy_enabled = true."
    }
  }
}

resource "google_storage_bucket_iam_member" "legacy_batch_worker_archive" {
  count = var.legacy_enabled ? 1 : 0

  bucket = var.archive_bucket
  role   = "roles/storage.objectViewer"
  member = google_service_account.legacy_batch_worker[0].member
}

resource "google_artifact_registry_repository_iam_member" "legacy_batch_worker" {
  count = var.legacy_enabled ? 1 : 0

  project    = var.project_id
  location   = var.artifact_registry.location
  repository = var.artifact_registry.repository_id
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.legacy_batch_worker[0].member
}

# --- legacy batch launcher (Cloud Scheduler calls flexTemplates:launch as this account) --

resource "google_service_account" "legacy_batch_launcher" {
  count = var.legacy_enabled ? 1 : 0

  project      = var.project_id
  account_id   = "legacy-batch-launcher"
  display_name = "Launches the scheduled legacy batch flex template"
}

resource "google_project_iam_member" "legacy_batch_launcher" {
  #checkov:skip=CKV_GCP_49:dataflow.developer is the predefined role needed to call flexTemplates:launch; it cannot impersonate by itself, and the only account the launcher may act as is the batch worker (serviceAccountUser on that one account below).
  count = var.legacy_enabled ? 1 : 0

  project = var.project_id
  role    = "roles/dataflow.developer"
  member  = google_service_account.legacy_batch_launcher[0].member
}

# The launcher may start jobs as the batch worker, and as no other account.
resource "google_service_account_iam_member" "legacy_batch_launcher_acts_as_worker" {
  count = var.legacy_enabled ? 1 : 0

  service_account_id = google_service_account.legacy_batch_worker[0].name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.legacy_batch_launcher[0].member
}

resource "google_storage_bucket_iam_member" "legacy_batch_launcher_templates" {
  count = var.legacy_enabled ? 1 : 0

  bucket = var.templates_bucket
  role   = "roles/storage.objectViewer"
  member = google_service_account.legacy_batch_launcher[0].member
}

# --- template publishers (a CI account that builds the flex templates) -----------------

locals {
  worker_members = compact([
    google_service_account.kappa_worker.member,
    try(google_service_account.legacy_batch_worker[0].member, ""),
  ])
}

resource "google_storage_bucket_iam_member" "template_publishers" {
  for_each = toset(var.template_publishers)

  bucket = var.templates_bucket
  role   = "roles/storage.objectAdmin"
  member = each.value

  lifecycle {
    precondition {
      condition     = !contains(local.worker_members, each.value)
      error_message = "template_publishers must not include a worker account: a worker that can write the templates can change what the scheduler launches."
    }
  }
}
