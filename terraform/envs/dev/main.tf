provider "google" {
  project        = var.project_id
  region         = var.region
  default_labels = merge(var.labels, { system = "kappa-migration" })
}

provider "google-beta" {
  project        = var.project_id
  region         = var.region
  default_labels = merge(var.labels, { system = "kappa-migration" })
}

locals {
  archive_bucket_name   = "${var.project_id}-interactions-archive"
  templates_bucket_name = "${var.project_id}-dataflow-templates"
  legacy_speed_enabled  = var.legacy_enabled && var.legacy_speed_on_dataproc
  # One temp/staging bucket per worker account: none can touch another's staged code.
  work_buckets = merge(
    { kappa = "${var.project_id}-dataflow-kappa" },
    var.legacy_enabled ? { legacy_batch = "${var.project_id}-dataflow-legacy-batch" } : {},
    local.legacy_speed_enabled ? { legacy_speed = "${var.project_id}-dataproc-legacy-speed" } : {},
  )
  # CMEK by default: the given key, else the one module.kms creates; null only when opted out.
  kms_key_name = one(module.kms[*].crypto_key_id)

  apis = toset([
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "cloudkms.googleapis.com",
    "cloudscheduler.googleapis.com",
    "compute.googleapis.com",
    "dataflow.googleapis.com",
    "dataproc.googleapis.com",
    "iam.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "storage.googleapis.com",
  ])
}

resource "google_project_service" "this" {
  for_each = var.enable_apis ? local.apis : toset([])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

module "kms" {
  source = "../../modules/kms"
  count  = var.cmek_enabled ? 1 : 0

  project_id           = var.project_id
  location             = var.region
  kms_key_name         = var.kms_key_name
  grant_service_agents = var.kms_grant_service_agents
  dataproc_enabled     = local.legacy_speed_enabled
  labels               = var.labels

  depends_on = [google_project_service.this]
}

module "storage" {
  source = "../../modules/storage"

  project_id                = var.project_id
  location                  = var.region
  archive_bucket_name       = local.archive_bucket_name
  templates_bucket_name     = local.templates_bucket_name
  work_buckets              = local.work_buckets
  temp_object_age_days      = var.temp_object_age_days
  archive_nearline_age_days = var.archive_storage_class_ages.nearline_days
  archive_coldline_age_days = var.archive_storage_class_ages.coldline_days
  kms_key_name              = local.kms_key_name
  force_destroy             = var.force_destroy

  depends_on = [google_project_service.this]
}

module "pubsub" {
  source = "../../modules/pubsub"

  project_id                     = var.project_id
  region                         = var.region
  topic_message_retention        = var.topic_message_retention
  subscription_message_retention = var.subscription_message_retention
  max_delivery_attempts          = var.max_delivery_attempts
  legacy_enabled                 = var.legacy_enabled
  kms_key_name                   = local.kms_key_name

  archive = {
    bucket                   = module.storage.archive_bucket
    filename_datetime_format = var.archive_filename_datetime_format
  }

  depends_on = [google_project_service.this]
}

module "bigquery" {
  source = "../../modules/bigquery"

  project_id                 = var.project_id
  location                   = var.region
  serving_source             = var.serving_source
  legacy_enabled             = var.legacy_enabled
  batch_period_seconds       = var.timing.batch_period_seconds
  deletion_protection        = var.deletion_protection
  legacy_deletion_protection = var.legacy_deletion_protection
  kms_key_name               = local.kms_key_name

  depends_on = [google_project_service.this]
}

module "artifact_registry" {
  source = "../../modules/artifact_registry"

  project_id   = var.project_id
  location     = var.region
  kms_key_name = local.kms_key_name

  depends_on = [google_project_service.this]
}

module "iam" {
  source = "../../modules/iam"

  project_id              = var.project_id
  legacy_enabled          = var.legacy_enabled
  kappa_subscription_name = module.pubsub.kappa_subscription_name
  kappa_dataset_id        = module.bigquery.dataset_ids["kappa"]
  legacy_dataset_id       = lookup(module.bigquery.dataset_ids, "legacy", null)
  dead_letter_table       = module.bigquery.dead_letter_table
  templates_bucket        = module.storage.templates_bucket
  template_publishers     = var.template_publishers
  archive_bucket          = module.storage.archive_bucket

  work_buckets = {
    kappa        = module.storage.work_buckets["kappa"]
    legacy_batch = lookup(module.storage.work_buckets, "legacy_batch", null)
  }

  artifact_registry = {
    location      = var.region
    repository_id = module.artifact_registry.repository_id
  }

  depends_on = [google_project_service.this]
}

module "dataflow" {
  source = "../../modules/dataflow"

  project_id     = var.project_id
  region         = var.region
  legacy_enabled = var.legacy_enabled
  timing         = var.timing
  subnetwork     = var.subnetwork
  kms_key_name   = local.kms_key_name

  kappa_stream = {
    template_gcs_path     = coalesce(var.kappa_template_gcs_path, "${module.storage.templates_prefix}/kappa_stream.json")
    service_account_email = module.iam.kappa_worker_email
    temp_location         = module.storage.temp_locations["kappa"]
    staging_location      = module.storage.staging_locations["kappa"]
    subscription          = module.pubsub.kappa_subscription_id
    output_table          = module.bigquery.aggregate_table_ids["kappa_stream"]
    dead_letter_table     = module.bigquery.dead_letter_table_id
    max_workers           = var.dataflow_max_workers
  }

  legacy_batch = var.legacy_enabled ? {
    template_gcs_path     = coalesce(var.legacy_batch_template_gcs_path, "${module.storage.templates_prefix}/legacy_batch.json")
    service_account_email = module.iam.legacy_batch_worker_email
    temp_location         = lookup(module.storage.temp_locations, "legacy_batch", null)
    staging_location      = lookup(module.storage.staging_locations, "legacy_batch", null)
    launcher_email        = module.iam.legacy_batch_launcher_email
    archive_root          = module.pubsub.archive_root
    output_table          = lookup(module.bigquery.aggregate_table_ids, "legacy_batch", null)
    batch_runs_table      = module.bigquery.batch_runs_table_id
    dead_letter_table     = module.bigquery.dead_letter_table_id
    schedule              = var.legacy_batch_schedule
    max_workers           = var.dataflow_max_workers
  } : null

  # Workers must be allowed to read the subscription and write the tables before start.
  depends_on = [module.iam]
}

module "legacy_speed" {
  source = "../../modules/legacy_speed"
  count  = local.legacy_speed_enabled ? 1 : 0

  project_id        = var.project_id
  region            = var.region
  subscription_name = module.pubsub.legacy_speed_subscription_name
  legacy_dataset_id = module.bigquery.dataset_ids["legacy"]
  staging_bucket    = lookup(module.storage.work_buckets, "legacy_speed", null)
  subnetwork        = var.subnetwork
  kms_key_name      = local.kms_key_name

  depends_on = [google_project_service.this]
}

module "monitoring" {
  source = "../../modules/monitoring"

  project_id            = var.project_id
  alerts_enabled        = var.migration_alerts_enabled
  notification_channels = var.alert_notification_channels
  labels                = var.labels
}
