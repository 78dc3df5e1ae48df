-- Current value per key: sinks are append-only, so the row with the highest pane_index
-- wins (emitted_at breaks ties between concurrent writers).
SELECT * EXCEPT (row_rank)
FROM (
  SELECT
    *,
    ROW_NUMBER() OVER (
      PARTITION BY window_start, tweet_id, event_type
      ORDER BY pane_index DESC, emitted_at DESC
    ) AS row_rank
  FROM `${project}.${dataset}.${table}`
)
WHERE row_rank = 1
