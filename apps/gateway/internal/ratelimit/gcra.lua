-- GCRA for a batch of requests in one atomic step.
-- KEYS: the client key of each request, in arrival order; a key may repeat,
--       and its requests are then decided one after the other, exactly as
--       separate calls would be.
-- ARGV[1]: emission interval in microseconds (period / rate)
-- ARGV[2]: burst (how many requests may arrive at once)
-- ARGV[3]: cost of each request
-- Returns, for each key in order, {allowed (0/1), remaining, retry_after_us,
-- reset_after_us}, flattened into one array.
-- Redis' own clock is used, so replicas with skewed clocks share one limit.
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- A repeated key is read once and written once: tats holds its state
-- between its requests, order the keys to store, in first-seen order.
local tats, dirty, order, out = {}, {}, {}, {}
for _, key in ipairs(KEYS) do
  local tat = tats[key]
  if tat == nil then
    tat = tonumber(redis.call('GET', key) or now)
  end
  if tat < now then tat = now end
  local new_tat = tat + interval * cost
  local allow_at = new_tat - burst * interval
  if allow_at > now then
    local remaining = math.floor((now - (tat - burst * interval)) / interval)
    if remaining < 0 then remaining = 0 end
    tats[key] = tat
    out[#out + 1] = 0
    out[#out + 1] = remaining
    out[#out + 1] = allow_at - now
    out[#out + 1] = tat - now
  else
    if not dirty[key] then
      dirty[key] = true
      order[#order + 1] = key
    end
    tats[key] = new_tat
    out[#out + 1] = 1
    out[#out + 1] = math.floor((now - allow_at) / interval)
    out[#out + 1] = 0
    out[#out + 1] = new_tat - now
  end
end
for _, key in ipairs(order) do
  local tat = tats[key]
  -- %.0f: Lua's default number format would round a microsecond clock
  redis.call('SET', key, string.format('%.0f', tat), 'PX', string.format('%.0f', math.ceil((tat - now) / 1000) + 1))
end
return out
