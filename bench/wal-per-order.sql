-- WAL and disk bytes per order in PostgreSQL (docs/capacity.md): a scratch
-- schema with the real orders table and its indexes (migrations 001, 003,
-- 008) and the outbox (007), 200 commits of 60 orders, each with its
-- reserved event; prints wal_bytes_per_order|disk_bytes_per_order.
-- psql -h 127.0.0.1 -U postgres -d test -qAt -f bench/wal-per-order.sql
DROP SCHEMA IF EXISTS capmeasure CASCADE;
CREATE SCHEMA capmeasure;
SET search_path = capmeasure;
-- The real tables (\ir: relative to this file): migration 003's index on
-- orders, which 008 replaces, and the outbox of 007.
\ir ../postgres/migrations/001_init.sql
CREATE INDEX orders_by_user ON orders (sale_id, user_id);
\ir ../postgres/migrations/007_outbox.sql
\ir ../postgres/migrations/008_order_indexes.sql
CHECKPOINT;
SELECT pg_current_wal_insert_lsn() AS l0 \gset
-- 200 commits of 60 rows, like the measured batches; random 16-byte ids
DO $$ BEGIN FOR b IN 1..200 LOOP
  INSERT INTO capmeasure.orders (id, sale_id, user_id, quantity, status, idem_key, created_at, expires_at)
  SELECT 'o_' || md5(random()::text), 'phone-drop', 'user-' || md5(random()::text), 1, 'reserved', 'key-' || md5(random()::text), now(), now() + interval '15 minutes'
  FROM generate_series(1, 60);
  INSERT INTO capmeasure.outbox (sale_id, order_id, event, at)
  SELECT 'phone-drop', 'o_' || md5(random()::text), 'reserved', now() FROM generate_series(1, 60);
  COMMIT;
END LOOP; END $$;
SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'l0') / 12000.0 AS wal_bytes_per_order,
       pg_total_relation_size('capmeasure.orders') / 12000.0 AS disk_bytes_per_order;
SET client_min_messages = warning;
DROP SCHEMA capmeasure CASCADE;
