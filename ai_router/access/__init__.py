"""Access control and spend: router keys, the models each may use, its rate limits, concurrency
and budget, enforced by reserving before a call and settling after it, with the counters kept
where every process (sqlite) or every replica (redis) sees the same numbers."""
