#!/usr/bin/env bash
# End-to-end latency of a TUMBLE 1 s count over the datagen source paced at 10 K, 100 K
# and 1 M rows/s, event time following the wall clock, watermark delay 0, 10 s each.
# Prints each job's latency line from its end-of-run summary.
#   bash benches/latency/tumble_latency.sh [WEIR_BINARY]   (default target/release/weir)
set -euo pipefail
bin="${1:-target/release/weir}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
for rate in 10000 100000 1000000; do
  per=$((rate / 1000))
  last=$((rate * 10 - 1))
  cat > "$dir/q$rate.sql" <<SQL
CREATE TABLE src (i BIGINT, ts AS TO_TIMESTAMP_LTZ(i / $per, 3), WATERMARK FOR ts AS ts)
  WITH ('connector' = 'datagen', 'rows-per-second' = '$rate', 'fields.i.kind' = 'sequence',
        'fields.i.start' = '0', 'fields.i.end' = '$last');
CREATE TABLE out (w TIMESTAMP(3), c BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT window_start, COUNT(*)
FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL '1' SECOND))
GROUP BY window_start, window_end;
SQL
  echo "$rate rows/s: $("$bin" run "$dir/q$rate.sql" 2>&1 | grep 'end-to-end latency' | sed 's/^ *//')"
done
