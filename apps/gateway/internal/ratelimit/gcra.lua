-- GCRA for a batch of clients in one atomic step: each asks for a number
-- of requests and is granted as many as its bucket holds, up to that.
-- KEYS: the client keys, each at most once.
-- ARGV[1]: emission interval in microseconds (period / rate)
-- ARGV[2]: burst (how many requests may arrive at once)
-- ARGV[2 + i]: how many requests KEYS[i] asks for (at least 1)
-- Returns, for each key in order, {granted, remaining, retry_after_us,
-- reset_after_us}, flattened into one array: remaining counts what is left
-- after the grant, retry_after how long until one more request fits.
-- Redis' own clock is used, so replicas with skewed clocks share one limit.
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i, key in ipairs(KEYS) do
  local want = tonumber(ARGV[2 + i])
  -- tat: when the bucket would be full again; each request moves it one
  -- interval on, and a request fits while tat stays within the burst.
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local granted = math.floor((now + burst * interval - tat) / interval)
  if granted > want then granted = want end
  if granted > 0 then
    tat = tat + granted * interval
    -- %.0f: Lua's default number format would round a microsecond clock
    redis.call('SET', key, string.format('%.0f', tat), 'PX', string.format('%.0f', math.ceil((tat - now) / 1000) + 1))
  else
    granted = 0
  end
  local remaining = math.floor((now + burst * interval - tat) / interval)
  if remaining < 0 then remaining = 0 end
  local retry = tat + interval - burst * interval - now
  if retry < 0 then retry = 0 end
  out[#out + 1] = granted
  out[#out + 1] = remaining
  out[#out + 1] = retry
  out[#out + 1] = tat - now
end
return out
