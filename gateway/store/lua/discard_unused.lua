-- discard_unused: forget a conversation nobody wrote in (see discard_if_unused in common).
-- @include "common"
--
-- KEYS[1] prefix   KEYS[2] conv:<conv>
-- ARGV[1] conversation id
-- Returns 1 when discarded, else 0.
if discard_if_unused(ARGV[1], KEYS[2]) then return 1 end
return 0
