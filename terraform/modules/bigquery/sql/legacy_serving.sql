-- Legacy serving merge (DESIGN.md section 3), per key (window_start, tweet_id, event_type):
--   the key's batch period = window_start truncated to ${batch_period_seconds} s;
--   period has a batch run with status '${finished_status}' -> the batch value
--     (a key the finished batch never saw is absent, i.e. 0; the speed value is NOT used);
--   otherwise                                              -> the speed value.
-- The placeholders are valid for both Terraform templatefile() and Python's
-- string.Template, so the Python side can render this same file.
WITH finished_periods AS (
  SELECT DISTINCT period_start
  FROM `${project}.${dataset}.${batch_runs_table}`
  WHERE status = '${finished_status}'
),

batch AS (
  SELECT
    b.*,
    TIMESTAMP_SECONDS(DIV(UNIX_SECONDS(b.window_start), ${batch_period_seconds}) * ${batch_period_seconds}) AS period_start
  FROM `${project}.${dataset}.${batch_current_view}` AS b
),

speed AS (
  SELECT
    s.*,
    TIMESTAMP_SECONDS(DIV(UNIX_SECONDS(s.window_start), ${batch_period_seconds}) * ${batch_period_seconds}) AS period_start
  FROM `${project}.${dataset}.${speed_current_view}` AS s
)

SELECT batch.* EXCEPT (period_start)
FROM batch
INNER JOIN finished_periods AS f
  ON f.period_start = batch.period_start

UNION ALL

SELECT speed.* EXCEPT (period_start)
FROM speed
LEFT JOIN finished_periods AS f
  ON f.period_start = speed.period_start
WHERE f.period_start IS NULL
