-- patch_meta: merge a patch into a conversation's meta.
-- @include "common"
--
-- KEYS[1] prefix   KEYS[2] conv:<conv>
-- ARGV[1] meta patch JSON (see patch_meta in includes/common.lua)
-- Returns 1, or 0 when the conversation does not exist (nothing created).
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
patch_meta(KEYS[2], ARGV[1])
return 1
