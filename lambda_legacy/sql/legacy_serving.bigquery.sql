-- legacy_serving (BigQuery): the Lambda serving merge, per key (window_start, tweet_id, event_type).
--   * the key's batch period (window_start truncated to ${batch_period_seconds} s) has a
--     FINISHED batch run -> the value of the LATEST finished run of that period; a key that
--     run did not produce is absent (0), even if the speed layer or an older run has it;
--   * otherwise -> the speed layer's current value (highest pane_index).
-- `pipeline` says which arm served the key. The dollar-brace placeholders are valid for both
-- Terraform templatefile() and Python's string.Template (lambda_legacy.merge renders it).
WITH latest_finished_run AS (
  SELECT period_start, MAX(pane_index) AS pane_index
  FROM `${project}.${dataset}.${batch_runs_table}`
  WHERE status = 'FINISHED'
  GROUP BY period_start
),

batch_rows AS (
  SELECT
    b.window_start, b.window_end, b.tweet_id, b.event_type, b.count, b.pipeline, b.emitted_at, b.pane, b.pane_index,
    ROW_NUMBER() OVER (
      PARTITION BY b.window_start, b.tweet_id, b.event_type ORDER BY b.emitted_at DESC
    ) AS copy_rank
  FROM `${project}.${dataset}.${batch_table}` AS b
  INNER JOIN latest_finished_run AS r
    ON r.period_start = TIMESTAMP_SECONDS(
         DIV(UNIX_SECONDS(b.window_start), ${batch_period_seconds}) * ${batch_period_seconds})
   AND r.pane_index = b.pane_index
),

speed_rows AS (
  SELECT
    s.window_start, s.window_end, s.tweet_id, s.event_type, s.count, s.pipeline, s.emitted_at, s.pane, s.pane_index,
    TIMESTAMP_SECONDS(DIV(UNIX_SECONDS(s.window_start), ${batch_period_seconds}) * ${batch_period_seconds})
      AS period_start,
    ROW_NUMBER() OVER (
      PARTITION BY s.window_start, s.tweet_id, s.event_type ORDER BY s.pane_index DESC, s.emitted_at DESC
    ) AS pane_rank
  FROM `${project}.${dataset}.${speed_table}` AS s
)

SELECT window_start, window_end, tweet_id, event_type, count, pipeline, emitted_at, pane, pane_index
FROM batch_rows
WHERE copy_rank = 1

UNION ALL

SELECT s.window_start, s.window_end, s.tweet_id, s.event_type, s.count, s.pipeline, s.emitted_at, s.pane, s.pane_index
FROM speed_rows AS s
LEFT JOIN latest_finished_run AS r
  ON r.period_start = s.period_start
WHERE s.pane_rank = 1
  AND r.period_start IS NULL
