-- Which claim holds a leased job. A claim whose answer is lost with its connection (the
-- database may have committed it) is released by this id when the replica can reach the
-- database again, instead of holding its jobs until the lease ends. Nullable and without a
-- default: adding it rewrites nothing.
ALTER TABLE perfhook_jobs ADD COLUMN claim_id bigint;
