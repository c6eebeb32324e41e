-- GCRA in one atomic step. KEYS[1]: the client's key.
-- ARGV[1]: emission interval in microseconds (period / rate)
-- ARGV[2]: burst (how many requests may arrive at once)
-- ARGV[3]: cost of this request
-- Returns {allowed (0/1), remaining, retry_after_us, reset_after_us}.
-- Redis' own clock is used, so replicas with skewed clocks share one limit.
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - burst * interval
if allow_at > now then
  local remaining = math.floor((now - (tat - burst * interval)) / interval)
  if remaining < 0 then remaining = 0 end
  return {0, remaining, allow_at - now, tat - now}
end
-- %.0f: Lua's default number format would round a microsecond clock
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', math.ceil((new_tat - now) / 1000) + 1))
local remaining = math.floor((now - allow_at) / interval)
return {1, remaining, 0, new_tat - now}
