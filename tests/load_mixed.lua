-- GETs of the page, one of its static files (the path is wrk's first argument after --),
-- the API and its health path, and POSTs that write to PostgreSQL, in turn.
local n = 0
local static = "/robots.txt"
init = function(args)
  if args[1] then static = args[1] end
end
request = function()
  n = n + 1
  local k = n % 6
  if k == 0 then
    return wrk.format("POST", "/api/items", {["Content-Type"] = "application/json"},
                      '{"name":"load ' .. n .. '"}')
  elseif k == 1 then
    return wrk.format("GET", "/")
  elseif k == 2 then
    return wrk.format("GET", static)
  elseif k == 3 then
    return wrk.format("GET", "/api/health")
  end
  return wrk.format("GET", "/api/items")
end
