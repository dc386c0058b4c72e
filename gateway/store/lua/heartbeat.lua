-- heartbeat: this instance is alive for another TTL.
--
-- KEYS[1] prefix   KEYS[2] hb:<instance>   KEYS[3] instances
-- ARGV[1] instance, ARGV[2] TTL in milliseconds
-- Returns 1 if the instance was not in the live set (first beat, or a survivor
-- reaped it while it could not reach Redis), else 0.
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return redis.call('SADD', KEYS[3], ARGV[1])
