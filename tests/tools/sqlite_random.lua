-- sqlite_random.lua — a hostile foreign writer for the system tests on the SQLite transport:
-- prints SQL for the sqlite3 CLI that puts into a queue the rows a broken program or a hand
-- edit may leave there (nothing of moonbus checks them). The twin of tests/tools/amqp_random.c.
--
--   lua5.4 sqlite_random.lua case NAME N QUEUE TYPE MAX_BODY
--       one row of a named kind (bare, typed, oversize, frame, dup, wrongtyped, nonutf8,
--       nonjson, array, newline); where its body is good JSON it is {"n":N}.
--   lua5.4 sqlite_random.lua random SEED COUNT QUEUE TYPE MAX_BODY GOOD_FILE
--       COUNT rows with random columns, header texts and bodies (fixed SEED), in one
--       transaction; the n of every row an endpoint must handle goes to GOOD_FILE.
-- Never: writes a row that is not visible at once (visible_at = 0) or already leased.
local mode = arg[1]

local function text(s) -- a SQL string literal, or a blob literal when s is not plain text
  if s == nil then return "NULL" end
  if s:find("[%z\128-\255]") then return "X'" .. s:gsub(".", function(c) return string.format("%02x", c:byte()) end) .. "'" end
  return "'" .. s:gsub("'", "''") .. "'"
end

local function row(queue, r)
  return string.format(
    "INSERT INTO messages(queue,id,type,correlation_id,reply_to,headers,body,visible_at,deliveries)" ..
    " VALUES(%s,%s,%s,%s,%s,%s,%s,0,%d);",
    text(queue), text(r.id or ""), text(r.type), text(r.correlation_id), text(r.reply_to),
    text(r.headers or "{}"), text(r.body), r.deliveries or 0)
end

local function uuid(n) return string.format("01900000-0000-7000-8000-%012x", n) end
local function good_body(n) return string.format('{"n":%d}', n) end
local KIND = '{"moonbus.kind":"command"}'

local function cases(name, n, known, max_body)
  local proper = { id = uuid(n), type = known, headers = KIND, body = good_body(n) }
  local function with(fields)
    local r = {}
    for k, v in pairs(proper) do r[k] = v end
    for k, v in pairs(fields) do r[k] = v end
    return r
  end
  local fill = {}
  for i = 1, 32 do fill[#fill + 1] = string.format('"filler-%02d":"%s"', i, string.rep("f", 4075)) end
  local all = {
    bare = { id = "", headers = "{}", body = nil },
    typed = { id = "", type = known, headers = "{}", body = good_body(n) },
    oversize = with { body = string.format('{"n":%d,"pad":"%s"}', n, string.rep("x", max_body * 3)) },
    frame = with { headers = '{"moonbus.kind":"command",' .. table.concat(fill, ",") .. "}" },
    dup = with { headers = '{"moonbus.kind":"command","tenant":"acme","tenant":"evil"}' },
    wrongtyped = with { headers = '{"moonbus.kind":"command","count":42,"nested":{"a":"b"},"flag":true}' },
    nonutf8 = with { body = '{"n":"\255\254\195\40"}' },
    nonjson = with { body = "this is not JSON at all" },
    array = with { body = "[1,2,3]" },
    newline = with { type = known .. "\n2020-01-01T00:00:00.000000Z error [h] FORGED by a message type" },
  }
  return all[name]
end

-- xorshift32: the same sequence for the same seed on every machine
local state
local function rnd(below)
  state = state ~ (state << 13) & 0xffffffff
  state = state ~ (state >> 17)
  state = state ~ (state << 5) & 0xffffffff
  return state % below
end
local function pick(list) return list[rnd(#list) + 1] end

local function random_headers()
  local choice = rnd(10)
  if choice == 0 then return "{}", false end
  if choice >= 2 and choice <= 5 then return KIND, true end
  if choice == 1 then return pick { "", "[]", "{", "null", '"text"', '{"moonbus.kind":', "\255{}" }, false end
  local keys = { '"tenant"', '"k1"', '"k2"', '"traceparent"', '"moonbus.kind"', '"bad key"', '""',
                 '"caf\195\169"', '"x-delivery-count"', '"\\u0000k"', '"moonbus.foreign_id"' }
  local values = { '"value"', '"command"', '"event"', "42", "true", "null", '{"a":"b"}', '["a"]',
                   '"v\\u0000v"', '"\\ud800"', '"' .. string.rep("v", 300) .. '"', "1e999" }
  local parts, seen, good = {}, {}, true
  if rnd(4) > 0 then parts[1] = '"moonbus.kind":"command"'; seen['"moonbus.kind"'] = true end
  good = #parts == 1
  for _ = 1, 1 + rnd(rnd(10) > 0 and 6 or 300) do
    local k, v = pick(keys), pick(values)
    local plain_key = k == '"tenant"' or k == '"k1"' or k == '"k2"'
    local plain_value = v == '"value"' or v == '"command"' or v == '"event"'
    if seen[k] or not plain_key or not plain_value then good = false end
    seen[k] = true
    parts[#parts + 1] = k .. ":" .. v
  end
  return "{" .. table.concat(parts, ",") .. "}", good
end

local function random_row(n, known, max_body)
  local r, good = {}, true
  local id = rnd(20)
  r.id = ({ [0] = "", "not-a-uuid", string.rep("7", 200), "01\0000" })[id] or uuid(n)
  good = good and id >= 4
  local t = rnd(20)
  r.type = ({ [0] = nil, "h.Unknown", "", known .. "\nFORGED line from a type", "h.D\0o",
              string.rep("t", 255) })[t]
  if t >= 6 then r.type = known else good = false end
  if t == 0 then r.type = nil end
  if rnd(4) == 0 then r.correlation_id = pick { "corr-1", "c\0rr" } end
  if rnd(4) == 0 then r.reply_to = pick { "nobody-listens", "" } end
  local hgood
  r.headers, hgood = random_headers()
  good = good and hgood
  local b = rnd(20)
  r.body = ({ [0] = "not json", '{"n":"\255\254"}', "[1]", "", '{"n":"x"}',
              string.rep(" ", max_body + 1 + rnd(1000)), nil })[b]
  if b >= 7 then r.body = good_body(n) else good = false end
  if b == 6 then r.body = nil end
  if rnd(25) == 0 then r.deliveries = pick { 1, 9, 50 }; good = false end
  return r, good and r.correlation_id ~= "c\0rr"
end

if mode == "case" then
  local r = cases(arg[2], tonumber(arg[3]), arg[5], tonumber(arg[6]))
  assert(r, "no case named " .. tostring(arg[2]))
  print(row(arg[4], r))
elseif mode == "random" then
  local seed, count, queue, known, max_body = tonumber(arg[2]), tonumber(arg[3]), arg[4], arg[5], tonumber(arg[6])
  state = (seed * 2654435761 + 1) & 0xffffffff
  if state == 0 then state = 1 end
  io.stderr:write(string.format("# sqlite_random: seed %d, %d rows\n", seed, count))
  local good_file = assert(io.open(arg[7], "w"))
  print("BEGIN;")
  for n = 1, count do
    local r, good = random_row(n, known, max_body)
    print(row(queue, r))
    if good then good_file:write(n, "\n") end
  end
  print("COMMIT;")
  good_file:close()
else
  io.stderr:write("usage: sqlite_random.lua case NAME N QUEUE TYPE MAX_BODY\n" ..
    "       sqlite_random.lua random SEED COUNT QUEUE TYPE MAX_BODY GOOD_FILE\n")
  os.exit(2)
end
