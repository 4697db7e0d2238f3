-- wrk script: sends each pre-signed Encrypt body of bodies.txt once (see wrk_encrypt_bodies.py).
local bodies = {}
for line in io.lines("bodies.txt") do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i + 1
  if i > #bodies then i = 1 end
  return wrk.format(nil, "/ehsm?Action=Encrypt", nil, bodies[i])
end
