-- Claims ask when the next job becomes claimable: the earliest due among free jobs (the
-- queue index), and the earliest lease end among claimed ones (this index, which holds only
-- jobs under a lease, a few claim batches).
CREATE INDEX perfhook_jobs_leased ON perfhook_jobs (notifier, lease_until_ms)
    WHERE status = 'pending' AND lease_until_ms IS NOT NULL;
