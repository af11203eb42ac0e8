-- GETs of the page, the API and its health path, and POSTs that write to PostgreSQL, in turn.
local n = 0
request = function()
  n = n + 1
  local k = n % 6
  if k == 0 then
    return wrk.format("POST", "/api/items", {["Content-Type"] = "application/json"},
                      '{"name":"load ' .. n .. '"}')
  elseif k == 1 then
    return wrk.format("GET", "/")
  elseif k == 2 then
    return wrk.format("GET", "/_next/static/app.js")
  elseif k == 3 then
    return wrk.format("GET", "/api/health")
  end
  return wrk.format("GET", "/api/items")
end
