-- Hot sales split their live stock over several Redis slots (redis.Layout).
-- Fixed when the sale is created, so every node routes buyers alike.
ALTER TABLE sales ADD COLUMN buckets integer NOT NULL DEFAULT 1 CHECK (buckets BETWEEN 1 AND 1024);
